"""Course-staff verbs, never shipped to students (the student bundle leaves this whole folder out):
building the bundles, the corpus audit, regrading an export, rerunning one test."""
