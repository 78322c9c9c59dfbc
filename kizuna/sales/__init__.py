"""Sales: pipelines with ordered stages, deals, activities (calls, meetings, visits, e-mails) and tasks."""
