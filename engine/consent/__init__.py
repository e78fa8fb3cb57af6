"""z2 consent management: a data subject's consents to process categories of
their data (request, status, grant, revoke), and the checks that keep pipeline
executions that declare ``data_categories`` within them."""
