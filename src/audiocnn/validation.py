"""What every settings class and settings file shares: pydantic's strict rules, and limits.

Recipes (`config`), frontend parameters (`spectral`) and bundle configs (`bundle`) are
pydantic dataclasses under `STRICT`: types are not silently converted (`epochs: 2.5` and
`deterministic: 1` are errors), numbers are finite, unknown keys are refused, and each
setting's range is annotated where it is declared, so nothing is allocated from a value
like `n_mels: 1e9`. A problem becomes one line naming the file and the key
(`validation_problem`). Settings files are read only if they are regular files of at most
`MAX_CONFIG_BYTES` of UTF-8 text (`settings_text`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, ValidationError

from audiocnn.errors import ConfigError

#: The largest settings file read: a recipe is about 1 kB, a bundle's config.json with
#: 10,000 labels about 300 kB.
MAX_CONFIG_BYTES = 1 << 20
#: How deeply a settings file may nest (a recipe needs 3 levels).
MAX_NESTING = 32

STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


def _yaml_number(value: Any) -> Any:
    """YAML 1.1 reads `1e-3` (no dot) as a string: a float setting takes it as the number it is."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


#: A float setting: an int or a float (not a bool), or a numeric string as YAML 1.1 leaves `1e-3`.
Float = Annotated[float, BeforeValidator(_yaml_number)]


def shown_keys(keys: object) -> str:
    """Keys from a settings file for a one-line message: plain ones as they are, anything else
    (a line break, a number, an empty string) as its Python repr."""
    return ", ".join(key if isinstance(key, str) and key.isprintable() and key.strip() else repr(key)
                     for key in sorted(keys, key=str))  # type: ignore[call-overload]


def validation_problem(err: ValidationError, where: str) -> str:
    """pydantic's first complaint as one line: where, the key, what is wrong, the value given."""
    return error_line(err.errors(include_url=False)[0], where)


def error_line(first: Mapping[str, Any], where: str = "", with_key: bool = True) -> str:
    """One of pydantic's (or FastAPI's) error entries as one line: `WHERE.KEY: problem (got VALUE)`;
    `with_key=False` leaves out where and the key (the caller names the option its own way)."""
    key = ".".join(str(part) for part in first["loc"]) if with_key else ""
    given = repr(first.get("input"))
    given = given if len(given) <= 60 else given[:57] + "..."
    message = first["msg"].rstrip(".").replace("Input should", "should", 1).removeprefix("Value error, ")
    separator = "." if where and key and not where.endswith((" ", ":")) else ""
    named = f"{where}{separator}{key}: " if where or key else ""
    if first["type"] == "missing":
        return f"{named}missing"
    if first["type"] == "extra_forbidden":
        return f"{named}not an option here"
    return f"{named}{message} (got {given})"


def settings_text(path: Path, what: str) -> str:
    """The text of a settings file, or a ConfigError naming it: missing, not a regular file
    (a pipe would block the read forever), over `MAX_CONFIG_BYTES`, or not UTF-8."""
    if not path.exists():
        raise ConfigError(f"{path}: {what} file not found")
    if not path.is_file():
        raise ConfigError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {size} bytes, larger than any {what} file ({MAX_CONFIG_BYTES} at most)")
    try:
        return path.read_bytes()[:MAX_CONFIG_BYTES].decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror or err})") from None
