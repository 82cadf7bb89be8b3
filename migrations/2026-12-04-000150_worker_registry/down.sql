DROP TABLE llm_workers;
