"""What a dropzone partner is, shared by the credential-vending API, its janitor and the SFTP identity provider.

Plain Python, no Pulumi import. Each Lambda ships this package next to its own (see
`components/silo/dropzone_site.py`, `lambda_code`).
"""
