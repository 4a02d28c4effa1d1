"""The log's signing key: QMSTATS_LOG_SIGNING_KEY, else ``<data_dir>/log-signing-key`` (created on first use).

The key file holds the Go ``note`` text form (``PRIVATE+KEY+<name>+<id>+<base64>``), mode 0600. The key
is never logged and never served; only its verifier key (vkey) is published.
"""

import os
from pathlib import Path

from events.notes import NoteError, Signer
from services.settings import Settings

KEY_FILE = "log-signing-key"


class SigningKeyError(Exception):
    """The configured signing key cannot be read."""


def key_path(settings: Settings) -> Path:
    """Where the signing key lives when it is not given in the environment."""
    return settings.data_dir.expanduser() / KEY_FILE


def load_signer(settings: Settings) -> Signer:
    """The configured signing key, creating and storing a new one when there is none."""
    if settings.log_signing_key is not None:
        try:
            return Signer.parse(settings.log_signing_key.get_secret_value())
        except NoteError as exc:
            raise SigningKeyError(f"QMSTATS_LOG_SIGNING_KEY is not a signing key: {exc}") from None
    path = key_path(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        signer = Signer.generate(settings.log_origin)
        draft = path.with_name(f".{KEY_FILE}.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(signer.private_text() + "\n")
        try:
            # A hard link appears whole or not at all and never replaces a file: of two processes
            # starting together, both end up with the key written first.
            os.link(draft, path)
        except FileExistsError:
            pass
        else:
            return signer
        finally:
            draft.unlink()
    try:
        return Signer.parse(path.read_text("ascii"))
    except (OSError, UnicodeDecodeError, NoteError) as exc:
        raise SigningKeyError(f"{path} is not a readable signing key: {exc}") from None
