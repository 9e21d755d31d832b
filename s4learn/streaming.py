"""Predictions on sequences that arrive step by step, from the S4D recurrence.

A causal S4D layer is a linear recurrence (:meth:`s4learn.nn.S4D.step`), so a fitted
network can read a stream one step at a time, carrying one state per layer, and give
after every step the prediction ``predict`` would give on the whole prefix read so
far: constant memory and constant work per step, however long the stream.
"""

import numpy as np
import torch
from sklearn.base import is_classifier
from sklearn.utils.validation import check_is_fitted

from .nn.model import STD_EPS


class StreamingPredictor:
    """Step-by-step predictions of a fitted causal S4Classifier or S4Regressor.

    After each step, the outputs are those of the estimator on the prefix read so far
    (``predict_proba`` for a classifier, ``predict`` for a regressor), up to float
    rounding: each S4D layer carries its recurrent state; mean pooling keeps a running
    sum of the features (float64), last-step pooling reads the newest step, and the
    statistics pooling keeps, for every tap, running sums of the values and their
    squares, the running maximum and the count of positive values.

    Parameters
    ----------
    estimator : S4Classifier or S4Regressor
        A fitted estimator with causal layers (``bidirectional=False``). Refitting it
        afterwards needs a new predictor.

    Attributes
    ----------
    n_streams_ : int
        Number of streams read in parallel (set by :meth:`reset`).
    n_steps_ : int
        Steps read so far in each stream.

    Examples
    --------
    >>> import numpy as np
    >>> from s4learn import S4Classifier
    >>> from s4learn.streaming import StreamingPredictor
    >>> X = np.random.RandomState(0).randn(60, 20)
    >>> clf = S4Classifier(d_model=8, n_layers=1, max_epochs=2, min_steps=0, random_state=0)
    >>> clf = clf.fit(X, X.sum(axis=1) > 0)
    >>> stream = StreamingPredictor(clf)
    >>> stream.update(X[0, :5, None]).shape      # 5 steps, 1 channel: 5 probability rows
    (5, 2)
    >>> stream.update(X[0, 5:, None]).shape
    (15, 2)
    >>> stream.predict().shape                    # the whole sequence read: one label
    (1,)
    """

    def __init__(self, estimator):
        check_is_fitted(estimator)
        self.estimator = estimator
        self.network = estimator.net_.module_
        if any(layer.bidirectional for layer in self.network.layers):
            raise ValueError("a bidirectional model cannot predict from a stream: its "
                             "output at step t reads the steps after t. Fit it with "
                             "bidirectional=False to stream")
        if estimator.input_scaling_.n_channels_added:
            raise ValueError("a model fitted with missing='mask' cannot predict from a "
                             "stream: its inputs gain indicator channels from NaN. Fit it "
                             "with missing='error' to stream")
        if not estimator.input_scaling_.steps_independent:
            raise ValueError(f"a model fitted with scaling={estimator.scaling_!r} cannot "
                             f"predict from a stream: it scales a step by its position "
                             f"or by the whole sequence. Fit it with scaling='channel' "
                             f"to stream")
        self.reset()

    def reset(self, n_streams=1):
        """Start ``n_streams`` new streams (every state back to zero); returns self."""
        if not isinstance(n_streams, (int, np.integer)) or n_streams < 1:
            raise ValueError(f"n_streams must be a positive int, got {n_streams!r}")
        device = self.network.encoder.weight.device
        self.n_streams_ = int(n_streams)
        self.n_steps_ = 0
        self._states = [layer.default_state(self.n_streams_, device)
                        for layer in self.network.layers]
        self._running = RunningStatistics(self.n_streams_, self.network, device)
        self._outputs = None  # network outputs for the prefix read so far
        self._previous_step = None  # the last scaled step read
        return self

    def update(self, steps):
        """Read the next steps of every stream; outputs after each of them.

        Parameters
        ----------
        steps : array-like of shape (n_streams, T, C), or (T, C) for one stream
            The next ``T`` steps, unscaled, with the channels ``C`` of the sequences
            the estimator was fitted on (a table row is one channel: ``C = 1``).

        Returns
        -------
        ndarray of shape (n_streams, T, n_outputs), or (T, n_outputs) for (T, C) input
            After each step, the class probabilities (classifier) or the predictions
            (regressor; ``(n_streams, T)`` for a 1-D ``y`` in fit) of the prefix.
        """
        steps, one_stream = self._check_steps(steps)
        scaled = torch.as_tensor(self.estimator.input_scaling_.transform(steps),
                                 device=self._running.device)
        self.network.eval()
        with torch.no_grad():
            outputs = [self._step(scaled[:, t]) for t in range(scaled.shape[1])]
        self._outputs = outputs[-1]
        outputs = torch.stack(outputs, dim=1).cpu().numpy().astype(np.float64)
        predictions = self._predictions(outputs)
        return predictions[0] if one_stream else predictions

    def predict_proba(self):
        """Class probabilities of each stream's prefix, shape (n_streams, n_classes)."""
        if not is_classifier(self.estimator):
            raise AttributeError("predict_proba is for classifiers")
        return self._predictions(self._current_outputs()[:, None])[:, 0]

    def predict(self):
        """Prediction of each stream's prefix: labels, or the regressor's targets."""
        outputs = self._current_outputs()
        if is_classifier(self.estimator):
            return self.estimator.classes_[outputs.argmax(axis=1)]
        return self._predictions(outputs[:, None])[:, 0]

    def _step(self, x_t):
        """One step of every stream: ``x_t`` (n_streams, C) scaled -> network outputs.

        The recurrent twin of :meth:`s4learn.nn.S4Model.forward` (eval mode, where
        dropout is the identity).
        """
        network = self.network
        x = network.encode_step(x_t, self._previous_step)  # (B H)
        self._previous_step = x_t
        taps = []
        for i, (layer, norm) in enumerate(zip(network.layers, network.norms)):
            z = norm(x) if network.prenorm else x
            y, self._states[i] = layer.step(z, self._states[i])
            taps.append(y)
            x = x + y
            if not network.prenorm:
                x = norm(x)
        self.n_steps_ += 1
        if network.pool == "last":
            return network.head(x)
        if network.pool == "stats":
            pooled = network.member_major(self._running.update(taps + [x]))
        else:
            pooled = self._running.update([x])
        return network.head(pooled.to(x.dtype))

    def _predictions(self, outputs):
        """Network outputs (n_streams, T, n_outputs) -> what predict(_proba) returns."""
        estimator = self.estimator
        if is_classifier(estimator):
            outputs = outputs - outputs.max(axis=-1, keepdims=True)
            proba = np.exp(outputs)
            return proba / proba.sum(axis=-1, keepdims=True)
        y = outputs * estimator.target_scale_ + estimator.target_mean_
        return y[..., 0] if estimator.y_ndim_ == 1 else y

    def _current_outputs(self):
        if self._outputs is None:
            raise ValueError("no step read yet: call update first")
        return self._outputs.cpu().numpy().astype(np.float64)

    def _check_steps(self, steps):
        steps = np.asarray(steps, dtype=np.float32)
        n_channels = self.network.d_input
        if steps.ndim not in (2, 3) or steps.shape[-1] != n_channels or not steps.shape[-2]:
            raise ValueError(f"steps must have shape (n_streams, T, {n_channels}) or "
                             f"(T, {n_channels}) with T >= 1, got {steps.shape}")
        one_stream = steps.ndim == 2
        if one_stream:
            steps = steps[None]
        if steps.shape[0] != self.n_streams_:
            raise ValueError(f"steps hold {steps.shape[0]} stream(s), but the predictor "
                             f"reads {self.n_streams_}: call reset(n_streams="
                             f"{steps.shape[0]}) to start that many")
        if not np.isfinite(steps).all():
            raise ValueError("steps contain NaN or infinity")
        return steps, one_stream


class RunningStatistics:
    """The pooling of :class:`~s4learn.nn.S4Model` over the steps read so far, updated
    one step at a time (float64): the mean for ``pool="mean"``, and for
    ``pool="stats"`` the statistics of :func:`~s4learn.nn.model.tap_statistics`."""

    def __init__(self, n_streams, network, device):
        n_taps = len(network.layers) + 1 if network.pool == "stats" else 1
        shape = (n_streams, n_taps, network.width)
        self.device = device
        self.statistics = network.pool == "stats"
        self.count = 0
        self.sum = torch.zeros(shape, dtype=torch.float64, device=device)
        self.sum_of_squares = torch.zeros_like(self.sum)
        self.maximum = torch.full_like(self.sum, -torch.inf)
        self.positive = torch.zeros_like(self.sum)

    def update(self, taps):
        """Read one step of every tap, each (n_streams, width); returns the pooling:
        (n_streams, width) for the mean, (n_streams, 4 * n_taps, width) for stats."""
        x = torch.stack(taps, dim=1).to(torch.float64)
        self.count += 1
        self.sum += x
        mean = self.sum / self.count
        if not self.statistics:
            return mean[:, 0]
        self.sum_of_squares += x.square()
        torch.maximum(self.maximum, x, out=self.maximum)
        self.positive += x > 0
        variance = (self.sum_of_squares / self.count - mean.square()).clamp(min=0)
        std = torch.sqrt(variance + STD_EPS)
        statistics = torch.stack([mean, self.maximum, self.positive / self.count, std], 2)
        return statistics.flatten(1, 2)
