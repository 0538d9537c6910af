"""Properties: the parser never raises, and what the trainer prints parses back."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trainer_lines import layer_line, quality_line, step_line, trace_line

from ponder_parse.parse.scan import parse_bytes, parse_text

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=0, max_value=1e4, allow_nan=False, allow_infinity=False)
anyfloat = st.floats(allow_nan=True, allow_infinity=True, width=64)


def close(parsed: float, value: float, decimals: int) -> bool:
    """Within print precision: half a unit in the last printed place (plus float slack)."""
    if math.isnan(value):
        return math.isnan(parsed)
    if math.isinf(value):
        return parsed == value
    return abs(parsed - value) <= 0.5 * 10**-decimals + 1e-9 * abs(value)


def close_sci(parsed: float, value: float, digits: int) -> bool:
    if not math.isfinite(value):
        return close(parsed, value, 0)
    if value == 0:
        return parsed == 0
    return (
        abs(parsed - value)
        <= 0.5 * 10 ** (math.floor(math.log10(abs(value))) - digits) * 1.0001 + 1e-300
    )


# Each example runs the whole parser (a few Polars queries): its time is the machine's
# load and Polars' first-call setup, not the input's, so no example may fail for it.
PARSER = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PARSER
@given(st.binary(max_size=2000))
def test_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    """Lines end in `\\n`, or in `\\r` in a file without any `\\n` that has two of them or
    ends in one (and does not start with one: a progress bar's first state); a wide
    encoding counts its decoded text (its accounting: test_line_accounting)."""
    tables, facts = parse_bytes(data)
    if "encoding" in facts:
        return
    cr_ends = (
        b"\n" not in data
        and not data.startswith(b"\r")
        and (data.count(b"\r") >= 2 or data.endswith(b"\r"))
    )
    end = b"\r" if cr_ends else b"\n"
    assert facts["n_lines"] == data.count(end) + (not data.endswith(end) and data != b"")
    assert facts["truncated"] == (not data.endswith(end) and data != b"")


@PARSER
@given(
    st.lists(
        st.sampled_from(
            [
                step_line(1),
                step_line(2, audit=True),
                layer_line(0),
                trace_line(0, [1, 0.5]),
                "",
                quality_line(0.1, -0.1, 0.001, "TAX ONLY", False),
                "==== GENERATION STEP 3 ====",
                "[GEN 1]",
                "    text",
                "=" * 60,
                "Traceback (most recent call last):",
                "  x",
                "\r",
                "garbage",
                "⏩ Resuming from step 1",
            ]
        ),
        max_size=40,
    ),
    st.text(max_size=50),
)
def test_never_raises_on_shuffled_real_lines(lines: list[str], tail: str) -> None:
    tables, facts = parse_text("\n".join(lines) + "\n" + tail)
    assert tables["steps"]["step"].is_unique().all()
    # Step lines are read wherever they stand (a step line ends any block), once per
    # number; the unterminated tail never is.
    printed = {1: step_line(1), 2: step_line(2, audit=True)}
    assert tables["steps"]["step"].to_list() == [n for n, ln in printed.items() if ln in lines]


@PARSER
@given(
    step=st.integers(0, 10**7),
    tot=anyfloat,
    lm=finite,
    net=finite,
    raw=finite,
    rwd=finite,
    lr=st.floats(1e-9, 1.0),
    grad=positive,
    lam=st.floats(1e-6, 1.0),
    db=st.booleans(),
    ctrl=st.floats(-10, 10),
    pnr=st.floats(0, 1),
    audit=st.booleans(),
    variant=st.sampled_from(["model3b", "smollm"]),
    mtp=finite,
    aux=finite,
    baton=st.none() | st.tuples(st.floats(0, 10), st.floats(0, 10)),
    avgs=st.none()
    | st.tuples(st.floats(0, 100), st.floats(0, 8), st.floats(0, 8), st.floats(-8, 8)),
    dt=st.floats(0, 1e6),
    tps=st.floats(0, 1e8),
)
def test_step_line_values_parse_back(
    step,
    tot,
    lm,
    net,
    raw,
    rwd,
    lr,
    grad,
    lam,
    db,
    ctrl,
    pnr,
    audit,
    variant,
    mtp,
    aux,
    baton,
    avgs,
    dt,
    tps,
) -> None:
    line = step_line(
        step,
        tot,
        lm,
        net,
        raw,
        rwd,
        lr,
        grad,
        lam,
        db,
        ctrl,
        pnr,
        audit=audit,
        variant=variant,
        mtp=mtp,
        aux=aux,
        baton=baton,
        avgs=avgs,
        dt=dt,
        tps=tps,
    )
    tables, _ = parse_text(line + "\n")
    assert tables["problems"].is_empty(), line
    r = tables["steps"].row(0, named=True)
    assert r["step"] == step and r["audit"] == audit and r["deadband_active"] == db
    assert close(r["tot_loss"], tot, 4) and close(r["lm_loss"], lm, 4)
    assert (
        close(r["total_ponder"], net, 6)
        and close(r["ponder_raw"], raw, 6)
        and close(r["reward"], rwd, 6)
    )
    assert (
        close_sci(r["lr"], lr, 4)
        and close(r["grad_norm"], grad, 4)
        and close_sci(r["lambda_p"], lam, 2)
    )
    assert close(r["ctrl_err"], ctrl, 3) and close(r["p_near_clamp"], pnr, 3)
    if variant == "model3b":
        assert close(r["mtp_loss"], mtp, 4) and close(r["aux_loss"], aux, 4)
    else:
        assert r["mtp_loss"] is None
    if baton:
        assert close(r["baton"], baton[0], 3) and close(r["baton_lam"], baton[1], 3)
    if avgs:
        assert close(r["pl_lm"], avgs[0] / 100, 4)
        assert (
            close(r["avg_exec"], avgs[1], 2)
            and close(r["avg_k"], avgs[2], 2)
            and close(r["avg_gap"], avgs[3], 2)
        )
    else:
        assert r["avg_k"] is None
    assert close(r["dt_ms"], dt, 2) and close(r["tok_per_sec"], tps, 2)


unit = st.floats(0, 1)


@PARSER
@given(
    i=st.integers(0, 99),
    k_exec=st.integers(1, 8),
    k=st.floats(0, 8),
    s_final=unit,
    avg=st.floats(0, 8),
    p95=st.floats(0, 8),
    ge=st.tuples(unit, unit, unit),
    ent=st.floats(0, 20),
    p_mean=unit,
    p_std=unit,
    d_rel=st.floats(0, 10),
    hd=st.floats(-5, 5),
    pd=st.floats(-1, 1),
    ps=unit,
    lam=st.floats(0, 1),
    trace=st.lists(unit, min_size=2, max_size=8),
)
def test_layer_and_trace_values_parse_back(
    i, k_exec, k, s_final, avg, p95, ge, ent, p_mean, p_std, d_rel, hd, pd, ps, lam, trace
) -> None:
    lines = [
        step_line(10),
        layer_line(
            i, k_exec, k, s_final, avg, p95, *ge, ent, p_mean, p_std, d_rel, hd, pd, ps, lam
        ),
        trace_line(i, trace),
    ]
    tables, _ = parse_text("\n".join(lines) + "\n")
    assert tables["problems"].is_empty()
    r = tables["layers"].row(0, named=True)
    assert r["layer"] == i and r["k_exec"] == k_exec
    assert close(r["k"], k, 2) and close(r["s_final"], s_final, 3)
    assert close(r["avg_exec_token"], avg, 2) and close(r["p95_exec_token"], p95, 2)
    for col, v in zip(("frac_ge2", "frac_ge3", "frac_ge4"), ge, strict=True):
        assert close(r[col], v, 4)
    assert close(r["ent"], ent, 4) and close(r["p_mean"], p_mean, 2) and close(r["p_std"], p_std, 3)
    assert close(r["d_rel"], d_rel, 3) and close(r["h_diff"], hd, 3) and close(r["p_diff"], pd, 2)
    assert close(r["ponder_signal"], ps, 3) and close_sci(r["lambda_p"], lam, 2)
    parsed_trace = tables["traces"]["s_trace"][0].to_list()
    assert len(parsed_trace) == len(trace)
    assert all(close(a, b, 2) for a, b in zip(parsed_trace, trace, strict=True))


@PARSER
@given(
    ce=finite,
    dh=finite,
    coupon=finite,
    status=st.sampled_from(["ECONOMIC WIN", "TAX ONLY", "AUDIT-POS", "AUDIT-NEG"]),
    conf=st.booleans(),
)
def test_quality_values_parse_back(ce, dh, coupon, status, conf) -> None:
    tables, _ = parse_text(
        step_line(1300) + "\n" + quality_line(ce, dh, coupon, status, conf) + "\n"
    )
    assert tables["problems"].is_empty()
    r = tables["quality"].row(0, named=True)
    assert (
        close(r["delta_ce"], ce, 6) and close(r["delta_h"], dh, 4) and close(r["coupon"], coupon, 6)
    )
    assert r["status"] == status and r["confidence"] == conf
