"""The simulated world outside the accounts: countries, ASNs and their IP prefixes, clients, models.

Everything here is deterministic given a seed and a simulation start, and small (a few thousand rows),
so it is built with ordinary Python once per run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

# signup-country mix of the benign population: (ISO-2, weight, UTC offset in hours, language, share of
# that country's users who sometimes prompt in their own language)
COUNTRIES: tuple[tuple[str, float, float, str, float], ...] = (
    ("US", 0.30, -6, "en", 0.0),
    ("GB", 0.06, 0, "en", 0.0),
    ("DE", 0.06, 1, "en", 0.0),
    ("FR", 0.04, 1, "en", 0.0),
    ("IN", 0.07, 5.5, "en", 0.0),
    ("JP", 0.05, 9, "ja", 0.6),
    ("BR", 0.04, -3, "en", 0.0),
    ("CA", 0.04, -5, "en", 0.0),
    ("KR", 0.03, 9, "ko", 0.6),
    ("AU", 0.03, 10, "en", 0.0),
    ("NL", 0.02, 1, "en", 0.0),
    ("SG", 0.02, 8, "zh", 0.3),
    ("ES", 0.02, 1, "en", 0.0),
    ("IT", 0.02, 1, "en", 0.0),
    ("PL", 0.02, 1, "en", 0.0),
    ("SE", 0.01, 1, "en", 0.0),
    ("MX", 0.02, -6, "en", 0.0),
    ("ID", 0.02, 7, "en", 0.0),
    ("TR", 0.01, 3, "en", 0.0),
    ("IL", 0.01, 2, "ru", 0.2),
    ("CH", 0.01, 1, "en", 0.0),
    ("VN", 0.01, 7, "en", 0.0),
    ("PH", 0.01, 8, "en", 0.0),
    ("NG", 0.01, 1, "en", 0.0),
    ("UA", 0.01, 2, "ru", 0.5),
    ("TW", 0.02, 8, "zh", 0.6),
    ("HK", 0.01, 8, "zh", 0.5),
    ("AE", 0.01, 4, "en", 0.0),
    ("KZ", 0.005, 5, "ru", 0.6),
)
COUNTRY_CODES = tuple(c[0] for c in COUNTRIES)
COUNTRY_INDEX = {c: i for i, c in enumerate(COUNTRY_CODES)}
HOSTING_COUNTRIES = ("US", "DE", "IE", "NL", "SG", "JP", "GB", "FR", "IN", "BR", "KR", "AU", "CA")
PROXY_COUNTRIES = ("US", "GB", "DE", "JP", "SG", "KR", "NL", "CA", "FR", "TW", "HK", "MY", "VN", "BR")
ALL_COUNTRIES = tuple(dict.fromkeys(COUNTRY_CODES + HOSTING_COUNTRIES + PROXY_COUNTRIES))
ALL_COUNTRY_INDEX = {c: i for i, c in enumerate(ALL_COUNTRIES)}

CATEGORIES = ("residential", "mobile", "hosting", "proxy", "education", "business")
CATEGORY_INDEX = {c: i for i, c in enumerate(CATEGORIES)}
# address pools that rotate per request (carrier-grade NAT, rotating proxies); the rest keep one address
ROTATING_CATEGORIES = frozenset({"mobile", "proxy"})

# well-known cloud ASNs, then synthetic ones numbered from these bases
HOSTING_ASNS = (16509, 15169, 8075, 14061, 24940, 16276, 63949, 20473, 45102, 31898)
PROXY_ASN_BASE = 209000
ACCESS_ASN_BASE = 64600  # per-country residential/mobile/business/education networks

USER_AGENTS: dict[str, tuple[str, ...]] = {
    "sdk_py": (
        "anthropic-python/0.49.0",
        "anthropic-python/0.52.2",
        "anthropic-python/0.57.1",
        "anthropic-python/0.64.0",
        "anthropic-python/0.68.1",
    ),
    "sdk_ts": (
        "anthropic-typescript/0.39.0",
        "anthropic-typescript/0.52.0",
        "anthropic-typescript/0.60.0",
        "anthropic-typescript/0.65.0",
    ),
    "sdk_other": ("anthropic-java/2.3.0", "anthropic-go/1.6.2", "anthropic-ruby/1.4.0", "anthropic-csharp/10.2.1"),
    "browser": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    ),
    "raw": (
        "python-requests/2.32.3",
        "curl/8.5.0",
        "Go-http-client/2.0",
        "httpx/0.27.2",
        "axios/1.7.7",
        "okhttp/4.12.0",
        "aiohttp/3.10.5",
        "python-requests/2.31.0",
        "curl/7.81.0",
        "node-fetch/1.0",
    ),
}
UA_GROUPS = tuple(USER_AGENTS)
UA_STRINGS = tuple(ua for group in UA_GROUPS for ua in USER_AGENTS[group])
UA_GROUP_OF = np.array([UA_GROUPS.index(g) for g in UA_GROUPS for _ in USER_AGENTS[g]], dtype=np.int16)

# (model, days before the simulation start it was released); the newest is released mid-simulation
OLD_MODELS: tuple[tuple[str, int], ...] = (
    ("claude-3-5-haiku", 420),
    ("claude-3-7-sonnet", 270),
    ("claude-sonnet-4", 170),
    ("claude-opus-4", 170),
    ("claude-haiku-4-5", 40),
)
NEW_MODEL = "claude-opus-4-6"
MODELS = tuple(m for m, _ in OLD_MODELS) + (NEW_MODEL,)
MODEL_SPEED_MS_PER_TOKEN = {
    "claude-3-5-haiku": 7.0,
    "claude-3-7-sonnet": 14.0,
    "claude-sonnet-4": 14.0,
    "claude-opus-4": 28.0,
    "claude-haiku-4-5": 6.0,
    NEW_MODEL: 22.0,
}


def new_model_release(start: dt.date, days: int) -> dt.datetime:
    """Mid-period release at 17:00 UTC, so campaign C's pivot happens inside the simulated window."""
    day = start + dt.timedelta(days=days // 2)
    return dt.datetime(day.year, day.month, day.day, 17, tzinfo=dt.UTC)


@dataclass
class Network:
    """ASNs and their /24 (IPv4) or /48 (IPv6) prefixes, as parallel numpy arrays."""

    asn: np.ndarray  # per ASN
    asn_category: np.ndarray  # per ASN, index into CATEGORIES
    prefix_text: pa.Array  # per prefix: "a.b.c" or "2a01:xxxx:yyyy"
    prefix_v6: np.ndarray
    prefix_asn: np.ndarray  # ASN number
    prefix_category: np.ndarray
    prefix_country: np.ndarray  # index into ALL_COUNTRIES
    by_category_country: dict[tuple[int, int], np.ndarray]  # (category, country) -> prefix ids
    by_category: dict[int, np.ndarray]

    def pick(self, rng: np.random.Generator, category: str, country: str | None) -> int:
        cat = CATEGORY_INDEX[category]
        if country is not None:
            pool = self.by_category_country.get((cat, ALL_COUNTRY_INDEX.get(country, -1)))
            if pool is not None and len(pool):
                return int(rng.choice(pool))
        return int(rng.choice(self.by_category[cat]))

    def asn_table(self) -> pa.Table:
        return pa.table(
            {
                "asn": pa.array(self.asn, pa.int32()),
                "category": pa.array([CATEGORIES[c] for c in self.asn_category], pa.string()),
            }
        )


def build_network(rng: np.random.Generator) -> Network:
    asns: list[int] = []
    asn_cat: list[int] = []
    p_text: list[str] = []
    p_v6: list[bool] = []
    p_asn: list[int] = []
    p_cat: list[int] = []
    p_country: list[int] = []
    used_v4: set[tuple[int, int, int]] = set()
    reserved_first = {0, 10, 100, 127, 169, 172, 192, 198, 203, 224}

    def v4_prefix() -> str:
        while True:
            first = int(rng.integers(1, 224))
            if first in reserved_first:
                continue
            key = (first, int(rng.integers(0, 256)), int(rng.integers(0, 256)))
            if key not in used_v4:
                used_v4.add(key)
                return f"{key[0]}.{key[1]}.{key[2]}"

    def v6_prefix() -> str:
        return f"2a0{int(rng.integers(0, 10))}:{int(rng.integers(0x1000, 0xFFFF)):x}:{int(rng.integers(0, 0xFFFF)):x}"

    def add_asn(number: int, category: str, countries: tuple[str, ...], prefixes: int, v6_share: float) -> None:
        asns.append(number)
        asn_cat.append(CATEGORY_INDEX[category])
        for k in range(prefixes):
            v6 = rng.random() < v6_share
            p_text.append(v6_prefix() if v6 else v4_prefix())
            p_v6.append(v6)
            p_asn.append(number)
            p_cat.append(CATEGORY_INDEX[category])
            p_country.append(ALL_COUNTRY_INDEX[countries[k % len(countries)]])

    next_access = ACCESS_ASN_BASE
    for code in COUNTRY_CODES:
        for category, count, prefixes, v6 in (
            ("residential", 3, 40, 0.15),
            ("mobile", 2, 16, 0.3),
            ("business", 2, 16, 0.05),
            ("education", 1, 6, 0.1),
        ):
            for _ in range(count):
                add_asn(next_access, category, (code,), prefixes, v6)
                next_access += 1
    for number in HOSTING_ASNS:
        add_asn(number, "hosting", HOSTING_COUNTRIES, 26, 0.0)
    for k in range(8):
        add_asn(PROXY_ASN_BASE + 17 * k, "proxy", PROXY_COUNTRIES, 28, 0.0)

    p_cat_arr, p_country_arr = np.array(p_cat, np.int16), np.array(p_country, np.int16)
    by_cc: dict[tuple[int, int], np.ndarray] = {}
    for pid, key in enumerate(zip(p_cat_arr.tolist(), p_country_arr.tolist(), strict=True)):
        by_cc.setdefault(key, []).append(pid)  # type: ignore[arg-type]  # lists while collecting, arrays below
    return Network(
        asn=np.array(asns, np.int32),
        asn_category=np.array(asn_cat, np.int16),
        prefix_text=pa.array(p_text, pa.string()),
        prefix_v6=np.array(p_v6),
        prefix_asn=np.array(p_asn, np.int32),
        prefix_category=p_cat_arr,
        prefix_country=p_country_arr,
        by_category_country={k: np.array(v, np.int32) for k, v in by_cc.items()},
        by_category={c: np.flatnonzero(p_cat_arr == c).astype(np.int32) for c in range(len(CATEGORIES))},
    )


def model_releases(start: dt.date, days: int) -> pa.Table:
    midnight = dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC)
    rows = [(m, midnight - dt.timedelta(days=d, hours=-17)) for m, d in OLD_MODELS]
    rows.append((NEW_MODEL, new_model_release(start, days)))
    return pa.table({"model": [m for m, _ in rows], "released_at": [t for _, t in rows]})


def hex_tokens(rng: np.random.Generator, n: int, n_bytes: int) -> np.ndarray:
    """n random lowercase-hex strings of 2*n_bytes characters, as a numpy bytes array (vectorized)."""
    table = np.array([f"{i:02x}".encode() for i in range(256)], dtype="S2")
    raw = rng.integers(0, 256, size=(n, n_bytes), dtype=np.uint8)
    return np.ascontiguousarray(table[raw]).view(f"S{2 * n_bytes}").reshape(n)
