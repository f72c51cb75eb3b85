"""docl dashboard (placeholder until the pages land)."""
import streamlit as st

st.set_page_config(page_title="docl", layout="wide")
st.title("docl — a training-dynamics lab for curriculum learning")
st.info("The dashboard pages are coming: Compare, Scores, Selected subsets, Tangent kernel, Sample, Data map.")
