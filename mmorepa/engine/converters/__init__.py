"""Converters from other checkpoint formats to mmorepa's."""
from .published import (PUBLISHED_ARCHS, PublishedArch, convert_published_state_dict,
                        published_arch)

__all__ = ['PUBLISHED_ARCHS', 'PublishedArch', 'convert_published_state_dict', 'published_arch']
