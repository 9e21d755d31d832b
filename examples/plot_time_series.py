"""
Forecasting a time series with sliding windows
==============================================

A table whose rows are in time order becomes sequences with
:class:`~s4learn.preprocessing.SequenceWindows`: each row turns into the window of the
rows ending at it, one step per row and one channel per column. An
:class:`~s4learn.S4Regressor` then learns to predict the next hour's value of a synthetic
electricity-load series from the last two days of load and temperature.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import r2_score

from s4learn import S4Regressor
from s4learn.plotting import plot_learning_curves
from s4learn.preprocessing import SequenceWindows, drop_padded

QUICK = os.environ.get("S4LEARN_GALLERY_QUICK") == "1"  # fewer epochs in CI builds

# %%
# A synthetic hourly series
# -------------------------
# Ninety days of hourly load: a daily and a weekly cycle, a temperature effect and
# noise. The target of hour ``t`` is the load of hour ``t + 1``.
rng = np.random.RandomState(0)
hours = np.arange(90 * 24)
temperature = 10 + 8 * np.sin(2 * np.pi * (hours - 8) / 24) + rng.normal(0, 1, hours.size)
load = (100 + 20 * np.sin(2 * np.pi * hours / 24) + 10 * np.sin(2 * np.pi * hours / 168)
        + 1.5 * temperature + rng.normal(0, 3, hours.size))
table = pd.DataFrame({"load": load, "temperature": temperature})
next_load = table["load"].shift(-1).to_numpy()[:-1]
table = table.iloc[:-1]

# %%
# Windows of 48 hours
# -------------------
# Windows only look back, so forming them over the whole table leaks nothing from the
# future; the first 47 rows, whose windows are padded, are left out. The last 20% of
# the hours are the test set, the 10% before them the validation set.
window = 48
X, y = drop_padded(SequenceWindows(window).fit_transform(table), next_load, window)
print("sequences:", X.shape)  # (samples, steps, channels)
n_test, n_val = len(X) // 5, len(X) // 10
n_train = len(X) - n_test - n_val
X_train, y_train = X[:n_train], y[:n_train]
X_val, y_val = X[n_train:n_train + n_val], y[n_train:n_train + n_val]
X_test, y_test = X[-n_test:], y[-n_test:]

reg = S4Regressor(d_model=16, n_layers=2, d_state=16, max_epochs=4 if QUICK else "auto",
                  dt_min=0.01, dt_max=0.5, random_state=0)
reg.fit(X_train, y_train, validation_data=(X_val, y_val))
print(f"test R2: {reg.score(X_test, y_test):.3f}")
repeat_last = X_test[:, -1, 0]  # naive forecast: the load of the current hour
print(f"test R2 of repeating the current hour: {r2_score(y_test, repeat_last):.3f}")

# %%
# Training curves and forecasts
# -----------------------------
fig, (ax_curves, ax_series) = plt.subplots(1, 2, figsize=(10, 3.5),
                                           gridspec_kw={"width_ratios": [1, 2]})
plot_learning_curves(reg, ax=ax_curves)
shown = slice(0, 7 * 24)  # the first week of the test set
ax_series.plot(y_test[shown], label="actual load", color="black", linewidth=1)
ax_series.plot(reg.predict(X_test[shown]), label="S4Regressor, 1 hour ahead")
ax_series.set_xlabel("hour of the test period")
ax_series.set_ylabel("load")
ax_series.legend()
fig.tight_layout()
plt.show()
