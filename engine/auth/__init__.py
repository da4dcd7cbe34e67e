"""Who may use the panel and the API: the admin password (`password`), login throttling
(`throttle`), and the API keys with their per-key rate limits (`api_keys`)."""

from engine.auth.password import (
    MIN_LENGTH,
    MalformedHash,
    hash_password,
    hash_source,
    parse_hash,
    set_password,
    stored_hash,
    upgrade_hash,
    verify_password,
)
from engine.auth.throttle import (
    LoginResult,
    LoginThrottle,
    forwarded_allow_ips,
    login_throttle,
    throttle_client,
)

__all__ = [
    "MIN_LENGTH",
    "LoginResult",
    "LoginThrottle",
    "MalformedHash",
    "forwarded_allow_ips",
    "hash_password",
    "hash_source",
    "login_throttle",
    "parse_hash",
    "set_password",
    "stored_hash",
    "throttle_client",
    "upgrade_hash",
    "verify_password",
]
