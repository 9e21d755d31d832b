"""Optimizer parameter groups that honour the modules' own parameter settings."""


def param_groups(module, lr, weight_decay, trainable_only=True):
    """Split ``module``'s parameters into optimizer groups.

    A submodule with a ``parameter_settings()`` method (:class:`~s4learn.nn.S4DKernel`:
    the SSM parameters dt and A) names parameters that get a group of their own with
    those settings; a learning rate set there acts as a ceiling, so it never exceeds
    ``lr``. Every other parameter goes into the default group with ``lr`` and
    ``weight_decay``. The settings live on the modules, not on the tensors, so they
    survive ``copy.deepcopy`` and pickling.

    Returns
    -------
    list of dict
        Groups for any ``torch.optim`` optimizer.
    """
    settings_of = {}  # id(parameter) -> settings
    for submodule in module.modules():
        if hasattr(submodule, "parameter_settings"):
            for name, settings in submodule.parameter_settings().items():
                settings_of[id(submodule.get_parameter(name))] = settings
    default = {"params": [], "lr": lr, "weight_decay": weight_decay}
    tagged = {}
    for parameter in module.parameters():
        if trainable_only and not parameter.requires_grad:
            continue
        settings = settings_of.get(id(parameter))
        if settings is None:
            default["params"].append(parameter)
            continue
        settings = {"weight_decay": weight_decay, **settings}
        settings["lr"] = min(settings.get("lr", lr), lr)
        key = tuple(sorted(settings.items()))
        tagged.setdefault(key, {"params": [], **settings})["params"].append(parameter)
    return [group for group in [default, *tagged.values()] if group["params"]]
