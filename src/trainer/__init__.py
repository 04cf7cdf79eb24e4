"""Trainer job: scikit-learn tabular models and the grocery image CNN."""
