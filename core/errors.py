"""The platform's exceptions: one base class, small subclasses, messages a user can act on."""


class PlatformError(Exception):
    """Base class; the message is shown to the user as one line, without a traceback."""


class ConfigError(PlatformError):
    """A setting is missing or malformed."""


class ServiceUnavailable(PlatformError):
    """PostgreSQL or Kafka cannot be reached."""


class InvalidInput(PlatformError):
    """A command-line argument or a row is not what it should be."""


class StackError(PlatformError):
    """The embedded stack could not be started or stopped."""
