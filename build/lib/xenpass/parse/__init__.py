"""Pure parsers: bytes or text in, typed values out."""
