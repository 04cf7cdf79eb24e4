"""Grocery image classification core shared by the backend and the trainer."""

CLASSES = (
    "apple",
    "banana",
    "carrot",
    "eggplant",
    "lemon",
    "lime",
    "orange",
    "tomato",
)
