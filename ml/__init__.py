"""Fare models: features, training, evaluation, registry, prediction and the run report; reads marts only, never raw."""

from __future__ import annotations

SERVICES: tuple[str, ...] = ("taxi", "uber")


class TrainingDataError(RuntimeError):
    """The training mart is missing, empty, or lacks a service: there is nothing sound to train on."""


class RegistryError(RuntimeError):
    """A model version is missing, unreadable, or a promote/rollback cannot be done."""
