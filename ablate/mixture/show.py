"""`ablate mixture show`: a mixture resolved against a pool, as text."""

from __future__ import annotations

from ablate.mixture.balance import kl_to_uniform, min_max_ratio, normalized_entropy
from ablate.mixture.plan import plan, resolve_proportions, rows_per_type, validate, volume_rows
from ablate.mixture.spec import Mixture, check_mixture, is_fraction
from ablate.pool import Pool


def mixture_summary(mixture: Mixture, pool: Pool, source: str = "mixture") -> str:
    """What `ablate mixture show` prints: shares, rows per type, available rows, balance."""
    # a damaged pool is refused here too, as by `data show` (it showed the manifest's "available"
    # rows of a table that cannot be read; review q#14)
    pool.check_readable()
    validate(mixture, pool.manifest, source)
    mixture = check_mixture(mixture, source)
    props = resolve_proportions(mixture, pool.manifest)
    volume = volume_rows(mixture, pool.manifest)
    rows = rows_per_type(props, volume)
    available = pool.manifest.labels[mixture.taxonomy]
    # Over every label of the pool's taxonomy, as a trial records `balance` (a job's task types
    # default to those labels): {a: .5, b: .5} in a 3-label pool is 0.631, not 1.
    shares = {t: props.get(t, 0.0) for t in sorted({*available, *props})}
    kind = mixture.proportions if isinstance(mixture.proportions, str) else "given"
    if isinstance(mixture.proportions, dict) and "natural" in mixture.proportions:
        kind = f"natural, temperature {mixture.proportions['temperature']:g}"
    if mixture.min_share:
        kind += f", min_share {mixture.min_share}"
    cells = plan(mixture, pool.manifest, source)
    inner = [c for c in cells if c.inner is not None]
    names = [*shares, *(f"  {c.inner}" for c in inner)]
    width = max([len(mixture.taxonomy), *map(len, names)])
    lines = [
        f"mixture      {mixture.name}",
        f"pool         {pool.path} ({pool.manifest.rows:,} rows)",
        f"volume       {volume:,} rows"
        + (f" ({mixture.volume * 100:g}% of the pool)" if is_fraction(mixture.volume) else ""),
        f"proportions  {kind}",
        f"max_repeat   {mixture.max_repeat}",
        f"seed         {mixture.seed}",
        "",
        f"{mixture.taxonomy:<{width}}  {'share':>7}  {'rows':>9}  {'available':>9}  {'repeats':>7}",
    ]
    for t in sorted(shares, key=lambda k: (-shares[k], k)):
        have, n = available.get(t, 0), rows.get(t, 0)
        reps = f"{n / have:.2f}" if have else "-"
        lines.append(f"{t:<{width}}  {shares[t]:>7.2%}  {n:>9,}  {have:>9,}  {reps:>7}")
        if t in mixture.within:
            lines[-1] += f"   within: {mixture.within[t].taxonomy}"
            for c in inner:
                if c.label == t:
                    share = c.rows / volume if volume else 0.0
                    reps = f"{c.rows / c.available:.2f}" if c.available else "-"
                    name = f"  {c.inner}"
                    lines.append(
                        f"{name:<{width}}  {share:>7.2%}  {c.rows:>9,}  {c.available:>9,}  {reps:>7}"
                    )
    lines += [
        "",
        f"balance      normalised entropy {normalized_entropy(shares):.3f}, "
        f"min/max {min_max_ratio(shares):.3f}, KL to uniform {kl_to_uniform(shares):.3f} nats",
        f"             over the pool's {len(shares)} `{mixture.taxonomy}` labels, as a trial "
        "records its `balance`",
    ]
    return "\n".join(lines)
