"""Text conventions every stage shares: scripts written without spaces, and sentences.

Stage packages do not import each other; what they must agree on about text lives here, beside
:mod:`ragtune.types` and :mod:`ragtune.errors`.
"""

from __future__ import annotations

__all__ = ["SPACELESS"]

SPACELESS = (
    "\u0e00-\u0e7f"  # Thai
    "\u0e80-\u0eff"  # Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3040-\u309f"  # Hiragana
    "\u30a0-\u30ff"  # Katakana
    "\u3400-\u4dbf"  # CJK Unified Ideographs Extension A
    "\u4e00-\u9fff"  # CJK Unified Ideographs
    "\uac00-\ud7af"  # Hangul syllables
    "\uf900-\ufaff"  # CJK Compatibility Ideographs
    "\uff66-\uff9f"  # half-width Katakana
)
"""Character ranges (for a regex class) of scripts whose words are not separated by spaces:
Chinese, Japanese, Thai, Lao, Khmer, Myanmar; and Korean Hangul, whose spaced words carry
their particles attached. Word-based text processing needs another unit for them."""
