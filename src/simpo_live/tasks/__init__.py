"""Synthetic tasks with scorable answers (the embedded default uses `reverse_words`)."""
