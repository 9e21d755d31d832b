"""Pretrain on the digits 0-4, fine-tune on the digits 5-9 with SDLoRA.

Compares, on the same training and test images of 5-9:
- training the same network from scratch,
- full fine-tuning of the pretrained network (every parameter trains),
- SDLoRA: LoRA on the linear projections, a few (channel, state) entries of each S4D
  layer's A and C, dt, D and the new output layer; under 10% of the parameters.

Each image is read as a sequence of its 64 pixels. About a minute on 2 CPU cores.
"""

import time

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from s4learn import S4Classifier
from s4learn.peft import SDLoRA

X, y = load_digits(return_X_y=True)
first_half = y < 5
X_new, y_new = X[~first_half], y[~first_half]
X_train, X_test, y_train, y_test = train_test_split(
    X_new, y_new, test_size=0.5, stratify=y_new, random_state=0)

settings = dict(max_epochs=20, batch_size=32, random_state=0)
start = time.perf_counter()
base = S4Classifier(**settings).fit(X[first_half], y[first_half])
print(f"pretrained on digits 0-4 in {time.perf_counter() - start:.0f} s")

models = {
    "from scratch": S4Classifier(**settings),
    "full fine-tuning": S4Classifier(pretrained=base, **settings),
    "SDLoRA": S4Classifier(pretrained=base, finetune=SDLoRA(), **settings),
}
print(f"fine-tuning on {len(X_train)} images of 5-9, testing on {len(X_test)}")
print(f"{'method':18s} {'trainable':>20s} {'accuracy':>9s} {'fit s':>6s}")
for name, model in models.items():
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    share = model.n_trainable_params_ / model.n_params_
    trainable = f"{model.n_trainable_params_} ({100 * share:.1f}%)"
    print(f"{name:18s} {trainable:>20s} {model.score(X_test, y_test):9.3f} {seconds:6.1f}")

sdlora = models["SDLoRA"]
before = sdlora.predict_proba(X_test)
sdlora.merge()  # fold the adapters in: plain weights, same predictions
assert abs(sdlora.predict_proba(X_test) - before).max() < 1e-5
assert sdlora.n_trainable_params_ < 0.1 * sdlora.n_params_
