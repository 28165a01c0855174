"""PlanSource: the records, the export directory format, and (later) the API client."""
