"""Tasks: cards (data) and batched environments behind one interface (`tfcaf.tasks.env`)."""
