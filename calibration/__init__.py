"""Data readers (WIDERFace, image folders) and accuracy evaluation."""
