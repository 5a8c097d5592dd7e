"""One simulated day of api_requests, generated as bounded Arrow record batches.

Per day: every profile draws a request count; profiles of one behaviour group are cut into chunks of
at most `chunk_rows` records; each chunk is built with numpy/pyarrow over all its records at once
(the only Python loops are over groups, chunks, prompt forms and bad-record kinds). Every chunk has
its own seed derived from (seed, day, group, chunk), so reruns reproduce the data exactly.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lake.catalog import table
from simulator import world
from simulator.population import DAY_US, PMFS, Behaviour, Population
from simulator.prompts import FAMILIES, PromptBook

BAD_RECORD_RATE = 0.0005
BAD_KINDS = (
    "null_account_id",
    "negative_tokens",
    "event_ts_outside_day",
    "malformed_client_ip",
    "duplicate_request_id",
)
MALFORMED_IPS = ("999.1.2", "not-an-ip", "10.0.0.256", "1.2.3.4.5", "", "fe80::zz", "localhost")
WAVES_PER_DAY = 16
_NEVER = np.iinfo(np.int64).max

_FAM_TOOL_PROB = np.array([f.tool_prob for f in FAMILIES])
_FAM_TOOL_LO = np.array([f.tools[0] for f in FAMILIES])
_FAM_TOOL_HI = np.array([f.tools[1] for f in FAMILIES])
_FAM_IMAGE = np.array([f.image_prob for f in FAMILIES])
_FAM_IN = np.array([f.input_tokens for f in FAMILIES])
_FAM_OUT = np.array([f.output_tokens for f in FAMILIES])
_N_OLD = len(world.OLD_MODELS)
_MODEL_SPEED = np.array([world.MODEL_SPEED_MS_PER_TOKEN[m] for m in world.MODELS])


@dataclass
class DayStats:
    records: int = 0
    by_group: Counter = field(default_factory=Counter)  # traffic group (segment / campaign) -> records
    bad: Counter = field(default_factory=Counter)


class TrafficGenerator:
    def __init__(self, population: Population, seed: int, chunk_rows: int = 250_000) -> None:
        self.pop = population
        self.seed = seed
        self.chunk_rows = chunk_rows
        self.book = PromptBook()
        self.schema = table("api_requests").schema
        self.models = pa.array(world.MODELS, pa.string())
        self.user_agents = pa.array(world.UA_STRINGS, pa.string())
        self.countries = pa.array(world.ALL_COUNTRIES, pa.string())
        self.hex16 = pa.array([f"{i:x}" for i in range(65536)], pa.string())
        self.endpoints = pa.array(["messages", "batch"], pa.string())
        self.stop_reasons = pa.array(["end_turn", "max_tokens", "tool_use", "stop_sequence"], pa.string())
        self.group_weekend = np.array([g.weekend_factor for g in population.groups])
        self.group_active = np.array([g.active_prob for g in population.groups])

    # --- one day ---------------------------------------------------------------------------------------

    def day_batches(self, day_index: int, day: dt.date, stats: DayStats) -> Iterator[pa.RecordBatch]:
        prof = self.pop.profiles
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0xDA7, day_index]))
        day_start_us = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1e6)
        weekend = day.weekday() >= 5
        factor = np.where(weekend, self.group_weekend[prof.group], 1.0)
        active = rng.random(len(prof)) < self.group_active[prof.group]
        alive = (prof.active_from_us < day_start_us + DAY_US) & (prof.active_until_us > day_start_us)
        counts = rng.poisson(prof.rate * factor * rng.lognormal(0, 0.25, len(prof))) * (active & alive)
        # campaign hydras fire in shared waves: the same start times for every account of a hydra
        waves = np.sort(rng.uniform(0, 86_400, (len(self.pop.hydra_campaign), WAVES_PER_DAY)), axis=1)
        first_chunk = True
        for group_no, behaviour in enumerate(self.pop.groups):
            members = np.flatnonzero((prof.group == group_no) & (counts > 0))
            if not len(members):
                continue
            cum = np.cumsum(counts[members])
            chunk_of = (cum - 1) // self.chunk_rows
            for chunk_no in np.unique(chunk_of):
                chunk = members[chunk_of == chunk_no]
                crng = np.random.default_rng(
                    np.random.SeedSequence([self.seed, 0xC4, day_index, group_no, int(chunk_no)])
                )
                batch = self._chunk(
                    behaviour,
                    chunk,
                    counts[chunk],
                    day,
                    day_start_us,
                    waves,
                    crng,
                    stats,
                    ensure_every_bad_kind=first_chunk,
                )
                if batch is None:
                    continue
                if batch.num_rows >= 2 * len(BAD_KINDS):  # big enough to have carried every kind
                    first_chunk = False
                stats.records += batch.num_rows
                stats.by_group[behaviour.name] += batch.num_rows
                yield batch

    # --- one chunk ----------------------------------------------------------------------------------------

    def _chunk(
        self,
        b: Behaviour,
        members: np.ndarray,
        counts: np.ndarray,
        day: dt.date,
        day_start_us: int,
        waves: np.ndarray,
        rng: np.random.Generator,
        stats: DayStats,
        ensure_every_bad_kind: bool,
    ) -> pa.RecordBatch | None:
        prof, pop = self.pop.profiles, self.pop
        m = len(members)
        local = np.repeat(np.arange(m), counts)
        within = np.arange(len(local)) - np.repeat(np.cumsum(counts) - counts, counts)
        sec = self._seconds(b, members, counts, local, within, waves, rng)
        ts = day_start_us + (sec * 1e6).astype(np.int64)
        pi = members[local]
        keep = (ts >= prof.active_from_us[pi]) & (ts < prof.active_until_us[pi])
        pi, ts = pi[keep], ts[keep]
        n = len(pi)
        if n == 0:
            return None

        # content first: the prompt builder returns records grouped by template, and every other column
        # is then drawn in that order
        family = np.minimum((prof.family_cdf[pi] < rng.random((n, 1), dtype=np.float32)).sum(axis=1), len(FAMILIES) - 1)
        foreign = rng.random(n) < prof.non_english_prob[pi]
        text_family = np.where(foreign, self.book.lang_map[prof.language[pi], family], self.book.english_code[family])
        templated = rng.random(n) < b.templated_prob
        key = np.where(templated, rng.integers(0, b.template_space, n), -1)
        order, prompt = self.book.build(text_family, key, prof.template_salt[pi], rng)
        pi, ts, family = pi[order], ts[order], family[order]
        account = prof.account[pi]

        old_model = np.minimum((prof.model_cdf[pi] < rng.random((n, 1), dtype=np.float32)).sum(axis=1), _N_OLD - 1)
        on_new = (ts >= prof.adopt_after_us[pi]) & (rng.random(n) < prof.adopt_share[pi])
        model = np.where(on_new, _N_OLD, old_model)

        batch_endpoint = rng.random(n) < b.batch_prob
        stream = ~batch_endpoint & (rng.random(n) < b.stream_prob)
        has_tools = rng.random(n) < _FAM_TOOL_PROB[family]
        lo, hi = _FAM_TOOL_LO[family], _FAM_TOOL_HI[family]
        tool_count = np.where(has_tools, lo + (rng.random(n) * (hi - lo + 1)).astype(np.int64), 0)
        has_image = rng.random(n) < _FAM_IMAGE[family]

        prompt_chars = pc.utf8_length(prompt).to_numpy(zero_copy_only=False)
        input_tokens = np.maximum(
            _FAM_IN[family] * b.in_scale * rng.lognormal(0, 0.6, n), prompt_chars / 3.5 + 12
        ).astype(np.int64)
        input_tokens += has_image * rng.integers(800, 1600, n)
        max_tokens = np.array(b.max_tokens)[rng.integers(0, len(b.max_tokens), n)]
        output_tokens = (_FAM_OUT[family] * b.out_scale * rng.lognormal(0, 0.7, n)).astype(np.int64) + 1
        stop = np.zeros(n, dtype=np.int8)  # end_turn
        cut = (output_tokens >= max_tokens) | (rng.random(n) < b.saturate_prob)
        output_tokens = np.where(cut, max_tokens, output_tokens)
        stop[cut] = 1
        tool_stop = ~cut & (tool_count > 0) & (rng.random(n) < 0.55)
        stop[tool_stop] = 2
        output_tokens = np.where(tool_stop, np.minimum(output_tokens, rng.integers(20, 300, n)), output_tokens)
        stop[~cut & ~tool_stop & (rng.random(n) < 0.02)] = 3

        u = rng.random(n)
        status = np.full(n, 200, dtype=np.int32)
        edges = np.cumsum([b.rate_limit_prob, 0.004, 0.002, 0.001])
        for code, low, high in zip((429, 500, 529, 400), np.r_[0, edges[:-1]], edges, strict=True):
            status[(u >= low) & (u < high)] = code
        failed = status != 200
        output_tokens = np.where(failed, 0, output_tokens)
        latency = 250 + rng.gamma(2.0, 250, n) + output_tokens * _MODEL_SPEED[model] * rng.lognormal(0, 0.2, n)
        latency = np.where(batch_endpoint, rng.uniform(60_000, 6 * 3_600_000, n), latency)
        latency = np.where(failed, rng.uniform(20, 400, n) + (status >= 500) * rng.uniform(0, 30_000, n), latency)

        slot = np.minimum((prof.slot_cdf[pi] < rng.random((n, 1), dtype=np.float32)).sum(axis=1), 2)
        prefix = prof.slot_prefix[pi, slot]
        host = prof.slot_host[pi, slot].astype(np.int64)
        host = np.where(host < 0, rng.integers(1, 255, n), host)
        ua = prof.ua[pi, (rng.random(n) < b.ua_secondary_prob).astype(np.int64)]
        no_system = rng.random(n) < b.system_none_prob
        system_prompt = prof.system_prompt[pi, rng.integers(0, 3, n)]
        key_slot = (rng.random(n) * pop.n_keys[account]).astype(np.int64)
        request_tokens = world.hex_tokens(rng, n, 12)

        # --- bad records: numeric corruptions first, text ones once the columns exist -------------------
        bad_rows = self._bad_rows(n, rng, ensure_every_bad_kind)
        neg = bad_rows["negative_tokens"]
        half = rng.random(len(neg)) < 0.5
        input_tokens[neg[half]] = -input_tokens[neg[half]]
        output_tokens[neg[~half]] = -np.maximum(output_tokens[neg[~half]], 1)
        shifted = bad_rows["event_ts_outside_day"]
        ts[shifted] += (
            np.where(rng.random(len(shifted)) < 0.5, -1, 1) * rng.uniform(1, 3, len(shifted)) * DAY_US
        ).astype(np.int64)

        client_ip = self._ips(prefix, host, rng)
        account_id = pop.account_ids.take(pa.array(account))
        request_id = pc.binary_join_element_wise("req_", pa.array(request_tokens).cast(pa.string()), "")
        if len(bad_rows["null_account_id"]):
            account_id = _replace(
                account_id, bad_rows["null_account_id"], pa.nulls(len(bad_rows["null_account_id"]), pa.string())
            )
        if len(bad_rows["malformed_client_ip"]):
            rows = bad_rows["malformed_client_ip"]
            client_ip = _replace(
                client_ip,
                rows,
                pa.array(
                    np.array(MALFORMED_IPS, dtype=object)[rng.integers(0, len(MALFORMED_IPS), len(rows))], pa.string()
                ),
            )
        if len(bad_rows["duplicate_request_id"]):
            rows = bad_rows["duplicate_request_id"]
            is_clean = np.ones(n, dtype=bool)
            is_clean[np.concatenate(list(bad_rows.values()))] = False
            clean = np.flatnonzero(is_clean)
            request_id = _replace(request_id, rows, request_id.take(pa.array(rng.choice(clean, len(rows)))))
        for kind, rows in bad_rows.items():
            stats.bad[kind] += len(rows)

        columns = {
            "request_id": request_id,
            "event_ts": pa.array(ts, pa.int64()).cast(self.schema.field("event_ts").type),
            "event_date": pa.repeat(pa.scalar(day, pa.date32()), n),
            "account_id": account_id,
            "org_id": pop.org_ids.take(pa.array(account)),
            "api_key_id": pop.api_key_ids.take(pa.array(account * 3 + key_slot)),
            "model": self.models.take(pa.array(model)),
            "endpoint": self.endpoints.take(pa.array(batch_endpoint.astype(np.int8))),
            "client_ip": client_ip,
            "asn": pa.array(pop.network.prefix_asn[prefix], pa.int32()),
            "country": self.countries.take(pa.array(pop.network.prefix_country[prefix])),
            "user_agent": self.user_agents.take(pa.array(ua)),
            "input_tokens": pa.array(input_tokens.astype(np.int32)),
            "output_tokens": pa.array(output_tokens.astype(np.int32)),
            "max_tokens": pa.array(max_tokens.astype(np.int32)),
            "stop_reason": self.stop_reasons.take(pa.array(stop, mask=failed)),
            "latency_ms": pa.array(latency.astype(np.int32)),
            "status_code": pa.array(status),
            "tool_count": pa.array(tool_count.astype(np.int32)),
            "has_image": pa.array(has_image),
            "stream": pa.array(stream),
            "system_prompt_hash": pop.system_prompts.take(pa.array(system_prompt, mask=no_system)),
            "prompt_prefix": prompt,
        }
        return pa.RecordBatch.from_arrays([columns[f.name] for f in self.schema], schema=self.schema)

    # --- timing ---------------------------------------------------------------------------------------------

    def _seconds(
        self,
        b: Behaviour,
        members: np.ndarray,
        counts: np.ndarray,
        local: np.ndarray,
        within: np.ndarray,
        waves: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Second of the UTC day for every record."""
        prof = self.pop.profiles
        n, m = len(local), len(members)
        if b.timing == "sessions":
            # humans and agents work in sessions: a start drawn from a local-time activity curve, then
            # requests spread over the session (uniform) or one tool step after another (stepped)
            per_session = np.maximum(1, np.round(b.per_session * rng.uniform(0.6, 1.4, m))).astype(np.int64)
            n_sessions = np.minimum(np.ceil(counts / per_session).astype(np.int64), 48)
            per_session = np.ceil(counts / n_sessions).astype(np.int64)
            first = np.cumsum(n_sessions) - n_sessions
            total = int(n_sessions.sum())
            pmf = PMFS[b.pmf] / PMFS[b.pmf].sum()
            start_local = rng.choice(24, size=total, p=pmf) * 3600.0 + rng.uniform(0, 3600, total)
            session = first[local] + within // per_session[local]
            position = within % per_session[local]
            kind, lo, hi = b.intra
            length = rng.uniform(lo, hi, total)
            if kind == "uniform":
                offset = rng.random(n) * length[session]
            else:
                offset = position * length[session] + rng.uniform(0, 0.5, n) * length[session]
            sec = start_local[session] + offset - prof.tz_hours[members][local] * 3600.0
        elif b.timing == "runs":
            # cron-like jobs: the same hours every day, a fixed request spacing inside a run
            runs = prof.runs[members]
            per_run = np.ceil(counts / runs).astype(np.int64)
            run = np.minimum(within // per_run[local], 3)
            position = within % per_run[local]
            run_start = prof.run_start_s[members][local, run] + rng.uniform(0, 120, m)[local]
            interval = prof.interval_s[members][local]
            if b.intra[0] == "uniform":
                sec = run_start + rng.random(n) * interval
            else:
                sec = run_start + position * interval * rng.uniform(0.9, 1.1, n)
        elif b.timing == "waves":
            # a hydra's accounts all fire inside the same waves, each a fixed spacing apart
            hydra = prof.hydra[members]
            waves_joined = rng.integers(3, 9, m)
            per_wave = np.maximum(3, np.ceil(counts / waves_joined)).astype(np.int64)
            first_wave = rng.integers(0, WAVES_PER_DAY, m)
            wave = (first_wave[local] + within // per_wave[local]) % WAVES_PER_DAY
            position = within % per_wave[local]
            spacing = self.pop.hydra_interval_s[hydra][local]
            sec = (
                waves[hydra[local], wave] + prof.lag_s[members][local] + position * spacing * rng.uniform(0.85, 1.15, n)
            )
        else:
            raise ValueError(f"unknown timing {b.timing!r} for {b.name}")
        return np.mod(sec, 86_400.0)

    # --- network ------------------------------------------------------------------------------------------

    def _ips(self, prefix: np.ndarray, host: np.ndarray, rng: np.random.Generator) -> pa.Array:
        net = self.pop.network
        prefixes = net.prefix_text.take(pa.array(prefix))
        ips = pc.binary_join_element_wise(prefixes, ".", pa.array(host).cast(pa.string()), "")
        v6 = net.prefix_v6[prefix]
        if v6.any():
            rows = np.flatnonzero(v6)
            groups = [self.hex16.take(pa.array(rng.integers(0, 65536, len(rows)))) for _ in range(5)]
            parts = [prefixes.take(pa.array(rows))]
            for g in groups:
                parts.extend([":", g])
            ips = _replace(ips, rows, pc.binary_join_element_wise(*parts, ""))
        return ips

    # --- bad records ----------------------------------------------------------------------------------------

    @staticmethod
    def _bad_rows(n: int, rng: np.random.Generator, ensure_every_kind: bool) -> dict[str, np.ndarray]:
        """Disjoint row sets per bad-record kind; every kind at least once per day so quarantine is exercised."""
        k = rng.binomial(n, BAD_RECORD_RATE / len(BAD_KINDS), len(BAD_KINDS))
        if ensure_every_kind:
            k = np.maximum(k, 1)
        k = np.minimum(k, max(n // (2 * len(BAD_KINDS)), 0))
        rows = rng.choice(n, size=int(k.sum()), replace=False) if k.sum() else np.zeros(0, np.int64)
        bounds = np.r_[0, np.cumsum(k)]
        return {kind: np.sort(rows[bounds[i] : bounds[i + 1]]) for i, kind in enumerate(BAD_KINDS)}


def _replace(array: pa.Array, rows: np.ndarray, values: pa.Array) -> pa.Array:
    """array with array[rows] = values (rows sorted ascending, values aligned with them)."""
    mask = np.zeros(len(array), dtype=bool)
    mask[rows] = True
    order = np.argsort(rows, kind="stable")
    return pc.replace_with_mask(array, pa.array(mask), values.take(pa.array(order)))
