"""cleanlab's CROWDLAB on the QC benchmark's crowd: the peer figures printed beside qcflow's (bench/qc-bench.ts).

Reads the JSON the bench writes (labels: samples x annotators with nulls, signal: each sample's features,
truth: true class indices) and prints one JSON object. pred_probs come from a logistic regression on the
signal, out of fold (5-fold, trained on majority-vote labels), as cleanlab's multi-annotator tutorial does.
Without a signal (real crowds that ship votes, not images: bench/real-crowd.ts) pred_probs are uniform, so
CROWDLAB judges on the annotators alone.
"""
import json
import sys

import numpy as np
import pandas as pd
from cleanlab.multiannotator import get_label_quality_multiannotator, get_majority_vote_label
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

data = json.load(open(sys.argv[1]))
labels = pd.DataFrame([[np.nan if v is None else v for v in row] for row in data["labels"]], columns=data["annotators"])
labels = labels.dropna(axis=1, how="all")
truth = np.array(data["truth"])
if data.get("signal") is not None:
    majority = get_majority_vote_label(labels)
    pred_probs = cross_val_predict(LogisticRegression(max_iter=1000), np.array(data["signal"]), majority, cv=5, method="predict_proba")
    source = "5-fold logistic regression on the signal"
else:
    pred_probs = np.full((len(truth), len(data["classes"])), 1 / len(data["classes"]))
    source = "uniform (no classifier: the annotators alone)"
result = get_label_quality_multiannotator(labels, pred_probs, verbose=False)
q = result["label_quality"]
consensus = q["consensus_label"].to_numpy()
quality = q["consensus_quality_score"].to_numpy()
wrong = consensus != truth


def coverage_at(rate):
    order = np.argsort(-quality, kind="stable")
    errors = np.cumsum(wrong[order])
    ok = errors <= rate * np.arange(1, len(order) + 1)
    return float(np.max(np.nonzero(ok)[0]) + 1) / len(order) if ok.any() else 0.0


print(json.dumps({
    "method": f"get_label_quality_multiannotator (CROWDLAB), pred_probs: {source}",
    "consensusAccuracyClass": round(float(np.mean(~wrong)), 4),
    "classifierAccuracy": round(float(np.mean(pred_probs.argmax(1) == truth)), 4),
    "auroc": round(float(roc_auc_score(wrong, -quality)), 4) if wrong.any() and (~wrong).any() else None,
    "coverageAt": {"0.005": round(coverage_at(0.005), 4), "qcflowClassErrorRate": round(coverage_at(data.get("qcflowClassErrorRate", 0.005)), 4)},
}))
