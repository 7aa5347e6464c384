"""Make a copy of a panel whose future is different, for the no-look-ahead test.

Every numeric field after date index --after is scrambled (prices times noise), and
every label `fwd_ret_h` whose window reaches past --after is replaced too, as a
different future would make it. With --add-tomorrow the copy also gets a field
`tomorrow` = the next day's close: a factor reading it peeks at the future.
"""
import argparse

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import json


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("panel")
    ap.add_argument("out")
    ap.add_argument("--after", type=int, required=True)
    ap.add_argument("--add-tomorrow", action="store_true")
    a = ap.parse_args()
    with pa.memory_map(a.panel) as src:
        t = ipc.open_file(src).read_all().combine_chunks()
    meta = json.loads(t.schema.metadata[b"af.panel"])
    nd, na = meta["n_dates"], meta["n_assets"]
    rng = np.random.default_rng(0)
    cols, fields = [], []
    rb = t.to_batches()[0]
    for f, c in zip(rb.schema, rb.columns):
        if pa.types.is_floating(f.type):
            v = c.to_numpy().reshape(nd, na).copy()
            if f.name.startswith("fwd_ret_"):
                h = int(f.name.split("_")[-1])
                s = max(a.after + 1 - h, 0)
                v[s:] = rng.normal(0, 0.03, size=v[s:].shape)
            else:
                v[a.after + 1:] *= rng.uniform(0.5, 1.5, size=v[a.after + 1:].shape)
            c = pa.array(v.ravel())
        cols.append(c)
        fields.append(f)
    if a.add_tomorrow:
        close = rb.column("close").to_numpy().reshape(nd, na)
        tom = np.full_like(close, np.nan)
        tom[:-1] = close[1:]
        cols.append(pa.array(tom.ravel()))
        fields.append(pa.field("tomorrow", pa.float64(), nullable=False))
    schema = pa.schema(fields, metadata=t.schema.metadata)
    batch = pa.RecordBatch.from_arrays(cols, schema=schema)
    with pa.OSFile(a.out, "wb") as sink, ipc.new_file(sink, schema) as w:
        w.write_batch(batch)


if __name__ == "__main__":
    main()
