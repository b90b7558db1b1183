"""The Streamlit inpainting page (``streamlit run app/streamlit_app.py``) and its testable logic."""
