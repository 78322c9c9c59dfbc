"""NPS surveys: signed answer links (one per score), responses unique per link, the ``nps.answered`` event and
NPS reports by month, segment, touchpoint and owner."""
