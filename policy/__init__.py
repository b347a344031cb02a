"""The project's CrossGuard policy pack: rules by area (`storage`, `access`, `logs`, `services`), listed in `policy.rules`, the pack itself in `__main__.py`."""
