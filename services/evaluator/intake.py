"""Decoding the evaluator's inputs, counting entries that carry unknown fields.

The wire contract ignores unknown fields (newer producers may add optional ones), so
such an entry is still evaluated; the evaluator only counts it, so an operator can see
a producer that misspells a field.
"""

from __future__ import annotations

from typing import Any

import msgspec

from shared.streams import DATA, Codec, M, Rejected


class CountingCodec(Codec[M]):
    """``Codec`` that also counts entries decodable only by ignoring fields."""

    def __init__(self, kind: type[M]) -> None:
        super().__init__(kind)
        strict: Any = type(f"Strict{kind.__name__}", (kind,), {}, forbid_unknown_fields=True)
        self._strict = msgspec.json.Decoder(strict)
        self.unknown_fields = 0

    def decode(
        self, ids: list[bytes], entries: list[dict[bytes, bytes]]
    ) -> tuple[list[tuple[bytes, M]], list[Rejected]]:
        good: list[tuple[bytes, M]] = []
        bad: list[Rejected] = []
        decode, keep = self._strict.decode, good.append  # looked up once a batch
        for entry_id, fields in zip(ids, entries, strict=True):
            body = fields.get(DATA)
            if body is not None:
                try:
                    keep((entry_id, decode(body)))
                    continue
                except msgspec.DecodeError:
                    pass  # unknown fields, or really bad: the contract's decoder decides
            one_good, one_bad = super().decode([entry_id], [fields])
            self.unknown_fields += len(one_good)
            good += one_good
            bad += one_bad
        return good, bad

    def take(self) -> int:
        """The count since the last call (read by the batch handler right after decoding)."""
        count, self.unknown_fields = self.unknown_fields, 0
        return count
