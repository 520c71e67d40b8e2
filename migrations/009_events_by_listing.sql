-- A listing's events in order: a closed listing's stream and a resume older than memory read
-- them without scanning the whole log.
CREATE INDEX events_listing_seq ON events (listing_id, seq);
