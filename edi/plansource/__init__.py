"""PlanSource: the records, the export directory format, the API client, pull and sandbox."""
