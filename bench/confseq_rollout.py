"""confseq's confidence sequences on the rollout bench's simulated outcomes, for figures beside qcflow's mSPRT.

Reads the stream simulateRollouts records (one byte per sample: candidate arm ? 2 : 0 | success ? 1 : 0) and
judges each run with the same rule as rolloutVerdict: a look every `perLook` samples, nothing before
`minPerArm` outcomes per arm, promote once the interval's lower end is above -margin, roll back once its upper
end is below it; under A/A a false positive is any look whose interval excludes 0.

The difference of the arms' rates is a mean of bounded pseudo-outcomes: with a fair coin assigning the arm,
z = 2(2·arm − 1)(y − c), c the running mean of earlier outcomes (predictable, so E[z | past] = p_cand − p_ctrl),
z ∈ [−2, 2]. Two of confseq's sequences are run on (z + 2)/4 ∈ [0, 1]:
  - predmix_empbern_twosided_cs: Waudby-Smith & Ramdas' predictable-mixture empirical Bernstein CS
    (nonasymptotic, valid at every sample);
  - normal_mixture_bound on t·σ̂²: the asymptotic CS of Waudby-Smith et al. (2021), the peer closest to
    qcflow's normal-mixture mSPRT, tuned for the middle of the horizon.

usage: confseq_rollout.py STREAM RUNS LOOKS PER_LOOK ALPHA MARGIN MIN_PER_ARM
"""
import json
import sys

import numpy as np
from confseq.boundaries import normal_mixture_bound
from confseq.predmix import predmix_empbern_twosided_cs


def pseudo_outcomes(codes: np.ndarray) -> np.ndarray:
    arm = (codes >> 1).astype(np.float64)
    y = (codes & 1).astype(np.float64)
    seen = np.arange(len(y), dtype=np.float64)
    c = np.concatenate(([0.5], np.cumsum(y)[:-1] / seen[1:]))
    return (2 * (2 * arm - 1) * (y - c) + 2) / 4


def normal_mixture_cs(x: np.ndarray, alpha: float, v_opt_at: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(1, len(x) + 1, dtype=np.float64)
    mean = np.cumsum(x) / t
    var = np.maximum(np.cumsum(x * x) / t - mean * mean, 1e-6)
    half = np.asarray(normal_mixture_bound(t * var, alpha, v_opt_at * var[v_opt_at - 1], alpha, False)) / t
    lo, hi = np.maximum.accumulate(mean - half), np.minimum.accumulate(mean + half)
    return lo, hi


def judge(lo: np.ndarray, hi: np.ndarray, codes: np.ndarray, looks: int, per_look: int, margin: float, min_per_arm: int):
    cand = np.cumsum(codes >> 1)
    difference, decision, decided_at = False, None, None
    for k in range(1, looks + 1):
        i = k * per_look - 1
        if min(i + 1 - cand[i], cand[i]) < min_per_arm:
            continue
        # The interval is on (Δ + 2)/4; back to the difference of rates.
        low, high = 4 * lo[i] - 2, 4 * hi[i] - 2
        if low > 0 or high < 0:
            difference = True
        if decision is None and low > -margin:
            decision, decided_at = 'promote', i + 1
        elif decision is None and high < -margin:
            decision, decided_at = 'rollback', i + 1
    return difference, decision, decided_at


def main() -> None:
    path, runs, looks, per_look, alpha, margin, min_per_arm = sys.argv[1:8]
    runs, looks, per_look, min_per_arm = int(runs), int(looks), int(per_look), int(min_per_arm)
    alpha, margin = float(alpha), float(margin)
    stream = np.fromfile(path, dtype=np.uint8).reshape(runs, looks * per_look)
    out = {}
    for name in ('empiricalBernstein', 'normalMixture'):
        differences, promoted, rolled_back, when = 0, 0, 0, []
        for codes in stream:
            x = pseudo_outcomes(codes)
            if name == 'empiricalBernstein':
                lo, hi = predmix_empbern_twosided_cs(x, alpha=alpha, running_intersection=True)
            else:
                lo, hi = normal_mixture_cs(x, alpha, len(x) // 2)
            difference, decision, decided_at = judge(np.asarray(lo), np.asarray(hi), codes, looks, per_look, margin, min_per_arm)
            differences += difference
            promoted += decision == 'promote'
            rolled_back += decision == 'rollback'
            if decided_at is not None:
                when.append(decided_at)
        when.sort()
        out[name] = {
            'differenceRate': differences / runs, 'promoted': promoted / runs, 'rolledBack': rolled_back / runs,
            'medianSamplesToDecide': when[len(when) // 2] if when else None,
        }
    print(json.dumps(out))


if __name__ == '__main__':
    main()
