"""The contract's samples (the project's copy), as the outside systems send them."""

from __future__ import annotations

import json

from tests.conftest import SAMPLES_DIR
from topics import registry

_FILES = {
    registry.GRID_REPORTS: ("grid-reports", "report_id"),
    registry.CAMERA_ALERTS: ("camera-alerts", "alert_id"),
    registry.POLICE_110: ("police-110", "referral_id"),
}
XML_SAMPLE = SAMPLES_DIR / "camera-alert.gb28181.xml"
_EXPECTED = json.loads((SAMPLES_DIR / "expected.json").read_text(encoding="utf-8"))
EXPECTED: dict[str, dict] = {k: v for section in _EXPECTED.values() for k, v in section.items()}


def valid_messages() -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value) for every valid sample, the GB/T 28181 XML included."""
    out = []
    for topic, (stem, key_field) in _FILES.items():
        for line in (SAMPLES_DIR / f"{stem}.valid.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append((topic, json.loads(line)[key_field].encode(), line.encode()))
    out.append((registry.CAMERA_ALERTS, b"37150200011320000001", XML_SAMPLE.read_bytes()))
    return out


def valid_source_ids() -> list[str]:
    return list(EXPECTED)


def produce_valid_samples(kafka) -> None:
    for topic, key, value in valid_messages():
        kafka.produce(topic, value, key=key)


def invalid_samples() -> list[tuple[str, bytes, str]]:
    """(topic, raw bytes, why) for every invalid sample."""
    out = []
    for topic, (stem, _) in _FILES.items():
        lines = (SAMPLES_DIR / f"{stem}.invalid.jsonl").read_text(encoding="utf-8").splitlines()
        for line in lines:
            if line.strip():
                sample = json.loads(line)
                raw = (sample["raw"].encode() if "raw" in sample
                       else bytes.fromhex(sample["raw_hex"]))
                out.append((topic, raw, sample["why"]))
    return out
