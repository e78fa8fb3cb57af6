"""Documents from upload to answer: type sniffing, text extraction and OCR,
chunking, processing runs, retrieval and cited RAG answers."""
