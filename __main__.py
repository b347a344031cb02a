"""Entry point of every stack: validate the stack's config, build its one top-level component."""

from program import deploy

deploy()
