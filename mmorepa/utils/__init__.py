"""Helpers every layer of mmorepa may use: argument checks and messages."""
from .messages import name_list
from .validation import check_choice, check_positive_int

__all__ = ['check_choice', 'check_positive_int', 'name_list']
