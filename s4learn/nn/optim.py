"""Optimizer parameter groups that honour per-parameter settings (``_optim``)."""


def param_groups(module, lr, weight_decay, trainable_only=True):
    """Split ``module``'s parameters into optimizer groups.

    Parameters tagged with an ``_optim`` dict (the SSM parameters dt and A of
    :class:`~s4learn.nn.S4DKernel`) get a group of their own with those settings; a
    tagged learning rate acts as a ceiling, so it never exceeds ``lr``. Every other
    parameter goes into the default group with ``lr`` and ``weight_decay``.

    Returns
    -------
    list of dict
        Groups for any ``torch.optim`` optimizer.
    """
    default = {"params": [], "lr": lr, "weight_decay": weight_decay}
    tagged = {}
    for parameter in module.parameters():
        if trainable_only and not parameter.requires_grad:
            continue
        settings = getattr(parameter, "_optim", None)
        if settings is None:
            default["params"].append(parameter)
            continue
        settings = {"weight_decay": weight_decay, **settings}
        settings["lr"] = min(settings.get("lr", lr), lr)
        key = tuple(sorted(settings.items()))
        tagged.setdefault(key, {"params": [], **settings})["params"].append(parameter)
    return [group for group in [default, *tagged.values()] if group["params"]]
