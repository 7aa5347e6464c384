"""lgbm-train against Python LightGBM 4.7.0 on one fold.

lgbm-train --dump-fold K wrote that fold's train/valid/test matrices (the exact f64
features and f32 labels it gave LightGBM, and its own predictions). Here Python
LightGBM trains on the same matrices with the same parameter strings for the number of
rounds lgbm-train's early stopping kept, and must predict the same values; and the
model file lgbm-train wrote must load in Python and predict the same values too.
"""
import argparse
import json
import sys

import lightgbm as lgb
import numpy as np
import pandas as pd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fold-dir", required=True)
    ap.add_argument("--tol", type=float, default=1e-9)
    a = ap.parse_args()
    meta = json.load(open(f"{a.fold_dir}/fold.json"))
    names = meta["features"]
    params = dict(meta["lightgbm_params"])
    data = {s: pd.read_parquet(f"{a.fold_dir}/data/{s}.parquet") for s in ("train", "valid", "test")}
    X = {s: np.ascontiguousarray(d[names].to_numpy(np.float64)) for s, d in data.items()}
    y = {s: d["label"].to_numpy(np.float32) for s, d in data.items()}
    train = lgb.Dataset(X["train"], label=y["train"], feature_name=names, params=params, free_raw_data=False)
    valid = lgb.Dataset(X["valid"], label=y["valid"], reference=train, params=params)
    best = meta["best_iteration"]
    evals = {}
    booster = lgb.train(params, train, num_boost_round=best, valid_sets=[valid], valid_names=["valid"],
                        callbacks=[lgb.record_evaluation(evals)])
    fails = []
    # The validation curve lgbm-train early-stopped on (fold.json rounds it to 1e-6).
    ours = meta["valid_l2"][:best]
    theirs = evals["valid"]["l2"]
    if len(theirs) != len(ours) or max(abs(a - b) for a, b in zip(ours, theirs)) > 1e-6:
        fails.append("validation l2 curve differs")
    # Python's own early stopping, from the same rounds and patience, stops at the same tree.
    run = json.load(open(f"{a.fold_dir}/../summary.json"))["lightgbm"]
    es = lgb.train(params, lgb.Dataset(X["train"], label=y["train"], feature_name=names, params=params),
                   num_boost_round=run["rounds"], valid_sets=[lgb.Dataset(X["valid"], label=y["valid"], params=params)],
                   callbacks=[lgb.early_stopping(run["early_stopping_round"], verbose=False)])
    print(f"early stopping: python best iteration {es.best_iteration}, lgbm-train {best}")
    if es.best_iteration != best:
        fails.append(f"python early stopping picks iteration {es.best_iteration}, lgbm-train {best}")
    loaded = lgb.Booster(model_file=f"{a.fold_dir}/model.txt")
    if loaded.num_trees() != best:
        fails.append(f"model.txt has {loaded.num_trees()} trees, best iteration {best}")
    for what, model, splits in (("python-trained", booster, ("train", "valid", "test")),
                                ("model.txt loaded in python", loaded, ("train", "test"))):
        for s in splits:
            want = data[s]["prediction"].to_numpy()
            err = np.max(np.abs(model.predict(X[s]) - want) / np.maximum(1.0, np.abs(want)))
            print(f"{s}: {what} vs lgbm-train, max rel diff {err:.3g} over {len(want)} rows")
            if not err <= a.tol:
                fails.append(f"{s}: {what} predicts differently ({err:.3g})")
    if list(loaded.feature_name()) != names:
        fails.append(f"feature names {loaded.feature_name()} != {names}")
    if fails:
        print("\n".join(fails))
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
