"""Generated retrieval sets in the real revisitop layout: <root>/<name>/{gnd_<name>.pkl, jpg/}."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

COLORS = [(220, 40, 40), (40, 200, 40), (40, 40, 220), (220, 220, 40)]


def write_gnd(folder: Path, name: str, data) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"gnd_{name}.pkl"
    path.write_bytes(pickle.dumps(data, protocol=2))
    return path


def write_retrieval_set(root: Path, name: str = "toyset", per_color: int = 4, seed: int = 0) -> dict:
    """Queries: one noisy image per colour (36×28, bbx inside); database: per colour 2 easy (same size),
    the rest hard (28×36, darker), plus one junk (mostly grey) per colour. Returns the pickled dict."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / name
    (folder / "jpg").mkdir(parents=True, exist_ok=True)

    def image(color, size, strength=1.0):
        w, h = size
        pixels = rng.integers(0, 60, size=(h, w, 3)) + np.array(color) * strength
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))

    db, parts = [], []
    for c, color in enumerate(COLORS):
        names = {"easy": [], "hard": [], "junk": []}
        for j in range(per_color):
            kind = "easy" if j < 2 else "hard"
            n = f"db_{c}_{kind}{j}"
            image(color, (36, 28) if kind == "easy" else (28, 36), 1.0 if kind == "easy" else 0.6).save(folder / "jpg" / f"{n}.jpg")
            db.append(n)
            names[kind].append(n)
        n = f"db_{c}_junk"
        image((128, 128, 128), (36, 28), 0.8).save(folder / "jpg" / f"{n}.jpg")
        db.append(n)
        names["junk"].append(n)
        parts.append(names)
    order = rng.permutation(len(db))
    imlist = [db[i] for i in order]
    index = {n: i for i, n in enumerate(imlist)}
    qimlist, gnd = [], []
    for c, color in enumerate(COLORS):
        q = f"query_{c}"
        image(color, (36, 28)).save(folder / "jpg" / f"{q}.jpg")
        qimlist.append(q)
        gnd.append({"bbx": [2.0, 3.0, 30.0, 25.0],
                    **{k: sorted(index[n] for n in parts[c][k]) for k in ("easy", "hard", "junk")}})
    data = {"imlist": imlist, "qimlist": qimlist, "gnd": gnd}
    write_gnd(folder, name, data)
    return data
