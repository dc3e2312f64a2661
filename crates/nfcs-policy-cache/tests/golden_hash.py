"""An independent implementation of the canonical context encoding (see src/context.rs) and of
its XXH3-64 hash, used to compute the golden values in tests/hash.rs.

Run: python3 golden_hash.py   (needs the `xxhash` package from PyPI)
"""

import struct

import xxhash


class Float(float):
    """Marks a number as a float (Python's 1.0 and 1 compare equal)."""


def encode(value, out):
    if value is None:
        out += b"\x00"
    elif value is False:
        out += b"\x01"
    elif value is True:
        out += b"\x02"
    elif isinstance(value, Float):
        if value != value:
            raise ValueError("NaN")
        canonical = 0.0 if value == 0.0 else float(value)
        out += b"\x04" + struct.pack("<d", canonical)
    elif isinstance(value, int):
        out += b"\x03" + struct.pack("<q", value)
    elif isinstance(value, str):
        data = value.encode("utf-8")
        out += b"\x05" + struct.pack("<Q", len(data)) + data
    elif isinstance(value, list):
        out += b"\x06" + struct.pack("<Q", len(value))
        for item in value:
            encode(item, out)
    elif isinstance(value, dict):
        out += b"\x07" + struct.pack("<Q", len(value))
        for key in sorted(value, key=lambda k: k.encode("utf-8")):
            data = key.encode("utf-8")
            out += struct.pack("<Q", len(data)) + data
            encode(value[key], out)
    else:
        raise TypeError(type(value))
    return out


def context_hash(context):
    return xxhash.xxh3_64_intdigest(bytes(encode(context, bytearray())), seed=0)


GOLDEN = {
    "agent": "planner",
    "risk": 7,
    "approved": False,
    "score": Float(0.25),
    "offset": Float(-0.0),
    "delta": -3,
    "note": None,
    "label": "naïve ✓",
    "scope": {"region": "eu-west", "tags": ["a", "b"], "limits": [1, Float(2.5)]},
}

if __name__ == "__main__":
    print(f"empty  {context_hash({}):016x}")
    print(f"golden {context_hash(GOLDEN):016x}")
