"""Notifications: channel plugins (`Channel`, entry-point group ``alignment_monitor.channels``) and the outbox."""
from monitor.notify.base import Channel, Message, parse_channels, registry
from monitor.notify.outbox import deliver_due, enqueue, enqueue_incidents, load_channels

__all__ = ["Channel", "Message", "parse_channels", "registry", "deliver_due", "enqueue", "enqueue_incidents",
           "load_channels"]
