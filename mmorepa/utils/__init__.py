from .validation import check_choice, check_positive_int

__all__ = ['check_choice', 'check_positive_int']
