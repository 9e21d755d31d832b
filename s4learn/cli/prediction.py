"""``s4learn predict``: apply a model saved by ``s4learn train`` to new data."""

from pathlib import Path

from .data import check_columns, checked_features, read_table
from .errors import UsageError
from .outputs import load_saved, results_frame, write_table


def predict(args):
    """The ``predict`` command: apply a saved model to a table and write the results."""
    model_path = Path(args.model or Path(args.output_dir) / f"{args.modelname}.joblib")
    output = Path(args.output_dir) / f"{args.modelname}_predictions.{args.format}"
    if output.exists() and not args.overwrite:
        raise UsageError(f"{output} exists; pass --overwrite to replace it")
    model = load_saved(model_path, "model")
    frame = read_table(args.dataset)
    features = args.independent_variables or _model_features(model, model_path)
    check_columns(frame, features, "--independent_variables")
    X = checked_features(frame[features])
    trained_on = _model_features(model, model_path)
    if len(features) != len(trained_on):
        raise UsageError(f"the model was trained on {len(trained_on)} features, got "
                         f"{len(features)} --independent_variables")
    X.columns = trained_on
    extra = frame[features] if args.output_data else None
    write_table(results_frame(model, X, frame.index.to_numpy(), features=extra), output)
    print(f"Predictions of {len(frame)} rows written to {output}")
    return 0


def _model_features(model, path):
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        raise UsageError(f"{path} was not trained on a table; pass --independent_variables")
    return [str(name) for name in names]
