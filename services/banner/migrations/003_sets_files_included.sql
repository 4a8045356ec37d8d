-- How many recorded files the current sets were computed from: an ingest that stopped after its
-- files committed and before the sets did leaves this behind COUNT(banner_files), and the next
-- ingest recomputes even though every file is rejected as already ingested.
ALTER TABLE banner_generation ADD COLUMN IF NOT EXISTS files_included BIGINT UNSIGNED NULL;
