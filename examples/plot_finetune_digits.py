"""
Fine-tuning methods side by side
================================

Pretrain on the digits 0-4, then learn the digits 5-9 four ways, on the same training
and test images of 5-9:

- training the same architecture from scratch,
- full fine-tuning of the pretrained network (every parameter trains),
- :class:`~s4learn.peft.LoRA`: low-rank adapters on the linear projections, the SSM
  frozen,
- :class:`~s4learn.peft.SDLoRA`: LoRA plus updates of a few (channel, state) entries of
  each S4D layer's A and C, with dt, D and the new output layer.

Each image is read as a sequence of its 64 pixels.
"""

import os
import time

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from s4learn import S4Classifier
from s4learn.peft import LoRA, SDLoRA

QUICK = os.environ.get("S4LEARN_GALLERY_QUICK") == "1"  # fewer epochs in CI builds

X, y = load_digits(return_X_y=True)
first_half = y < 5
X_new, y_new = X[~first_half], y[~first_half]
X_train, X_test, y_train, y_test = train_test_split(
    X_new, y_new, test_size=0.5, stratify=y_new, random_state=0)

settings = dict(max_epochs=3 if QUICK else "auto",
                batch_size=32, random_state=0)
architecture = dict(d_model=32, n_layers=2, d_state=16, dt_min=0.01, dt_max=1.0)
start = time.perf_counter()
base = S4Classifier(**architecture, **settings).fit(X[first_half], y[first_half])
print(f"pretrained on digits 0-4 in {time.perf_counter() - start:.0f} s")

# %%
# Fine-tune on the digits 5-9
# ---------------------------
# ``pretrained=`` brings the architecture; ``finetune=`` chooses what trains.
models = {
    "from scratch": S4Classifier(**architecture, **settings),
    "full fine-tuning": S4Classifier(pretrained=base, **settings),
    "LoRA": S4Classifier(pretrained=base, finetune=LoRA(), **settings),
    "SDLoRA": S4Classifier(pretrained=base, finetune=SDLoRA(), **settings),
}
print(f"fine-tuning on {len(X_train)} images of 5-9, testing on {len(X_test)}")
print(f"{'method':18s} {'trainable':>20s} {'accuracy':>9s} {'fit s':>6s}")
accuracy, trainable_share = {}, {}
for name, model in models.items():
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    accuracy[name] = model.score(X_test, y_test)
    trainable_share[name] = model.n_trainable_params_ / model.n_params_
    trainable = f"{model.n_trainable_params_} ({100 * trainable_share[name]:.1f}%)"
    print(f"{name:18s} {trainable:>20s} {accuracy[name]:9.3f} {seconds:6.1f}")

# %%
# Accuracy against the share of parameters trained
# ------------------------------------------------
fig, (ax_accuracy, ax_share) = plt.subplots(1, 2, figsize=(9, 3.5))
names = list(models)
colors = [f"C{index}" for index in range(len(names))]
ax_accuracy.barh(names, [accuracy[name] for name in names], color=colors)
ax_accuracy.set_xlabel("test accuracy on digits 5-9")
ax_accuracy.set_xlim(min(accuracy.values()) - 0.05, 1.0)
ax_share.barh(names, [100 * trainable_share[name] for name in names], color=colors)
ax_share.set_xlabel("trainable parameters (%)")
ax_share.set_yticks([])
ax_accuracy.invert_yaxis()  # the methods from top to bottom, as in the table
fig.tight_layout()
plt.show()

# %%
# Merging the adapters
# --------------------
# ``merge()`` folds the adapters into plain weights: the network has the pretrained
# architecture again, and the predictions do not change.
sdlora = models["SDLoRA"]
before = sdlora.predict_proba(X_test)
sdlora.merge()
print("largest change of a probability:", abs(sdlora.predict_proba(X_test) - before).max())
assert abs(sdlora.predict_proba(X_test) - before).max() < 1e-5
