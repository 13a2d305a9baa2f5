"""Block Kit building, kept apart from logic: functions from plain data to blocks and views."""
