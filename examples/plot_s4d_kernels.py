"""
The learned S4D convolution kernels
===================================

Each S4D layer holds ``d_model`` diagonal state-space models, one per channel; over a
sequence of length ``L`` each one acts as a convolution with the kernel
``K_l = 2 Re(sum_n C_n dB_n exp(dtA_n l))``. A fitted estimator's network is
``net_.module_`` (an :class:`s4learn.nn.S4Model`), and ``layer.kernel(L)`` returns a
layer's kernels, of shape ``(directions, d_model, L)``.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits

from s4learn import S4Classifier

QUICK = os.environ.get("S4LEARN_GALLERY_QUICK") == "1"  # fewer epochs in CI builds

# %%
# Train a causal (one-directional) model of two layers on the digits, read as 64-step
# pixel sequences.
X, y = load_digits(return_X_y=True)
clf = S4Classifier(d_model=16, n_layers=2, d_state=32, max_epochs=3 if QUICK else "auto",
                   dt_min=0.01, dt_max=1.0, random_state=0).fit(X, y)
print(f"training accuracy: {clf.score(X, y):.3f}")

# %%
# Kernels of four channels of each layer
# --------------------------------------
# Channels with a small step size ``dt`` remember far back (their kernels decay slowly);
# the others look only at the last few pixels. ``exp(log_dt)`` is each channel's ``dt``.
length = X.shape[1]
channels = [0, 1, 2, 3]
fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
for index, (layer, ax) in enumerate(zip(clf.net_.module_.layers, axes)):
    with torch.no_grad():
        kernels = layer.kernel(length)[0].numpy()  # (d_model, L), the only direction
        dt = layer.kernel.log_dt.exp().numpy()
    for channel in channels:
        ax.plot(np.arange(length), kernels[channel],
                label=f"channel {channel}, dt={dt[channel]:.2f}")
    ax.set_title(f"layer {index + 1}")
    ax.set_xlabel("lag l (pixels)")
    ax.legend(fontsize="small")
axes[0].set_ylabel(r"kernel $K_l$")
fig.tight_layout()
plt.show()
