"""Known secrets cut out of what the gateway shows and stores.

An upstream may echo the key it was sent in its error text (some proxies and local servers answer
"bad header Bearer sk-..."). Adapters build an :class:`UpstreamError`'s message from that text, and
the message goes to the caller, the log and the store. :class:`Scrubber` knows the configured
secrets (provider keys, the master key, the audit key) and replaces any of them, whole, with a
marker; the governance listener applies it to every failed attempt as it is finished, before
anything describes it.

    scrub = Scrubber({"openai provider key": "sk-proj-..."})
    scrub.text("Incorrect API key provided: sk-proj-...")   # "Incorrect API key provided: [openai provider key]"
"""

from __future__ import annotations

from collections.abc import Mapping

from outlast.providers.errors import UpstreamError

MIN_LENGTH = 8  # shorter "secrets" would cut ordinary words out of messages


class Scrubber:
    def __init__(self, secrets: Mapping[str, str]) -> None:
        # Longest first, so a key that contains another is replaced whole.
        self.secrets = sorted(((value, name) for name, value in secrets.items() if len(value) >= MIN_LENGTH),
                              key=lambda item: -len(item[0]))

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def text(self, text: str) -> str:
        for value, name in self.secrets:
            if value in text:
                text = text.replace(value, f"[{name}]")
        return text

    def error(self, error: UpstreamError) -> None:
        """Scrub ``error`` in place: its message and the text ``str(error)`` gives."""
        message = self.text(error.message)
        if message != error.message:
            error.message = message
            error.args = (message, *error.args[1:])
