"""structlog set-up: JSON lines when not on a terminal, readable colours when on one."""

import logging
import sys

import structlog


def console_logs(fmt: str = "auto") -> bool:
    """Whether log lines are readable text (``console``, or ``auto`` on a terminal) rather than JSON."""
    return fmt == "console" or (fmt == "auto" and sys.stderr.isatty())


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    """Configure structlog and the stdlib root logger once per process."""
    use_console = console_logs(fmt)
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        # One write per line (print writes the line and its newline apart): the API processes of serve --workers
        # share one stderr, and two lines written at the same moment must not run into each other.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
