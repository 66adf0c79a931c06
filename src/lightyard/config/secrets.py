"""Secrets from the environment, masked wherever a value could be shown or stored: the printed
config tree, logged hyperparameters, logger arguments, provenance files, checkpoints, .hydra/."""

from __future__ import annotations

import os
import re
from typing import Any

# a whole word of the variable's name: WANDB_API_KEY, HF_TOKEN, AWS_SECRET_ACCESS_KEY; not
# TOKENIZERS_PARALLELISM (whose "false" would otherwise be masked wherever it appears)
SECRET_NAME = re.compile(
    r"(^|_)(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?|AUTH)(_|$)", re.IGNORECASE
)
# values too common to be anyone's secret: masking them would mangle configs
NOT_SECRETS = {"true", "false", "none", "null", "yes", "no"}
MASK = "***"


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names say they are secret (WANDB_API_KEY, *TOKEN*,
    *KEY*, *SECRET*, *PASSWORD*), longest first so that overlapping ones mask fully."""
    environ = os.environ if environ is None else environ
    values = {
        v
        for k, v in environ.items()
        if SECRET_NAME.search(k) and len(v) >= 4 and v.lower() not in NOT_SECRETS
    }
    return sorted(values, key=len, reverse=True)


def redact(obj: Any, secrets: list[str] | None = None) -> Any:
    """A copy of obj with every secret value masked, and values of secret-named keys masked."""
    secrets = secret_values() if secrets is None else secrets
    if isinstance(obj, dict):
        return {
            k: MASK if isinstance(k, str) and _secret_key(k) and v else redact(v, secrets)
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact(v, secrets) for v in obj)
    if isinstance(obj, str):
        for secret in secrets:
            obj = obj.replace(secret, MASK)
        return obj
    return obj


def _secret_key(key: str) -> bool:
    # api_key, token, password ...; but not ordinary names like "monitor" or "keys" of a config
    # access_key_id / secret_access_key: S3 credentials (data.storage of data=streaming)
    return bool(
        re.search(
            r"(api_?key|token|secret|password|passwd|access_key_id|secret_access_key)$",
            key,
            re.IGNORECASE,
        )
    )
