"""One exception type whose message is a single line telling the user what was wrong and what to do."""


class SparsescopeError(Exception):
    """A bad input or an unmet precondition; str(err) is one line, ready to print."""
