"""The built-in workflow templates, as data (auterity's ``steps`` shape).

Steps carry no ids, as auterity's template example shows: a step is ``step-1``,
``step-2``, … by position, which is also how ``customizations`` name it. No
step names a model, so each runs on the deployment's default chat model (on
the embedded default, the local extractive provider). Text a step should work
on is given as context in ``system_prompt``: a generative model reads it as
instructions plus material, and the extractive provider quotes from it.
"""

from __future__ import annotations

from typing import Any

SUPPORT_TRIAGE: dict[str, Any] = {
    "id": "support-ticket-triage",
    "name": "Customer Support Triage",
    "description": (
        "Categorize an incoming support ticket, escalate urgent ones to the on-call "
        "address by e-mail and queue the rest for the support team."
    ),
    "category": "customer_service",
    "featured": True,
    "preview_image": "/templates/support-ticket-triage.png",
    "rating": 4.8,
    "created_at": "2025-08-01T00:00:00Z",
    "steps": [
        {
            "type": "ai_prompt",
            "name": "Categorize Ticket",
            "config": {
                "system_prompt": (
                    "You triage customer support tickets. A ticket is urgent when the "
                    "customer cannot use the product, loses money or reports a security "
                    "problem; anything else is routine.\n\n"
                    "Ticket from {{customer_email}}:\n{{ticket_content}}"
                ),
                "prompt": (
                    "Categorize this support ticket as billing, technical, account or other, "
                    "and say whether it is urgent or routine."
                ),
                "max_tokens": 200,
            },
        },
        {
            "type": "condition",
            "name": "Is Urgent?",
            "config": {
                "value": "{{steps.step-1.output | lower}}",
                "operator": "contains",
                "compare_to": "urgent",
            },
            "dependencies": ["step-1"],
        },
        {
            "type": "email",
            "name": "Escalate to On-Call",
            "config": {
                "to": "{{escalation_email}}",
                "subject": "Urgent support ticket from {{customer_email}}",
                "body": "Triage: {{steps.step-1.output}}\n\nTicket:\n{{ticket_content}}",
            },
            "dependencies": ["step-2"],
            "when": {"step-2": True},
        },
        {
            "type": "transform",
            "name": "Queue for Support",
            "config": {
                "output": {
                    "queue": "support",
                    "customer_email": "{{customer_email}}",
                    "triage": "{{steps.step-1.output}}",
                }
            },
            "dependencies": ["step-2"],
            "when": {"step-2": False},
        },
    ],
}

DOCUMENT_REVIEW: dict[str, Any] = {
    "id": "document-summary-review",
    "name": "Document Summary and Review",
    "description": (
        "Summarize a document, hold the summary for a reviewer's approval and e-mail "
        "the approved summary to its recipient."
    ),
    "category": "document_processing",
    "featured": True,
    "preview_image": "/templates/document-summary-review.png",
    "rating": 4.7,
    "created_at": "2025-08-01T00:00:00Z",
    "steps": [
        {
            "type": "ai_prompt",
            "name": "Summarize Document",
            "config": {
                "system_prompt": (
                    "You summarize documents faithfully, without adding facts.\n\n"
                    "Document '{{document_title}}':\n{{document_text}}"
                ),
                "prompt": "Summarize the key points and decisions of '{{document_title}}'.",
                "max_tokens": 400,
            },
        },
        {
            "type": "human_approval",
            "name": "Review Summary",
            "config": {"instructions": "Check the summary against the document before it is sent."},
            "dependencies": ["step-1"],
        },
        {
            "type": "email",
            "name": "Send Approved Summary",
            "config": {
                "to": "{{recipient_email}}",
                "subject": "Summary: {{document_title}}",
                "body": "{{steps.step-1.output}}",
            },
            "dependencies": ["step-2"],
        },
    ],
}

RESEARCH_WRITE_VALIDATE: dict[str, Any] = {
    "id": "research-write-validate",
    "name": "Research, Write and Validate",
    "description": (
        "Research a topic from the notes given, write a short article from the findings "
        "and check the draft's claims against them."
    ),
    "category": "content",
    "featured": False,
    "preview_image": "/templates/research-write-validate.png",
    "rating": 4.6,
    "created_at": "2025-08-01T00:00:00Z",
    "steps": [
        {
            "type": "ai_prompt",
            "name": "Research",
            "config": {
                "system_prompt": (
                    "You are a careful researcher: use the notes and say when something "
                    "is not in them.\n\nNotes on {{topic}}:\n{{notes}}"
                ),
                "prompt": "List the key facts, figures and open questions about {{topic}}.",
                "max_tokens": 600,
            },
        },
        {
            "type": "ai_prompt",
            "name": "Write",
            "config": {
                "system_prompt": (
                    "You are a clear, plain-spoken writer.\n\n"
                    "Research findings:\n{{steps.step-1.output}}"
                ),
                "prompt": "Write a short article about {{topic}} from the research findings.",
                "max_tokens": 800,
            },
            "dependencies": ["step-1"],
        },
        {
            "type": "ai_prompt",
            "name": "Validate",
            "config": {
                "system_prompt": (
                    "You check drafts against research.\n\n"
                    "Research findings:\n{{steps.step-1.output}}\n\n"
                    "Draft:\n{{steps.step-2.output}}"
                ),
                "prompt": (
                    "Which claims of the draft about {{topic}} do the research findings not "
                    "support? End with a verdict: approved or needs revision."
                ),
                "max_tokens": 400,
            },
            "dependencies": ["step-2"],
        },
        {
            "type": "transform",
            "name": "Package Article",
            "config": {
                "output": {
                    "topic": "{{topic}}",
                    "article": "{{steps.step-2.output}}",
                    "review": "{{steps.step-3.output}}",
                }
            },
            "dependencies": ["step-3"],
        },
    ],
}

FEEDBACK_RESPONSE: dict[str, Any] = {
    "id": "customer-feedback-summary",
    "name": "Customer Feedback Summary",
    "description": (
        "Analyze a customer's feedback for sentiment and concerns and e-mail the "
        "analysis to a manager."
    ),
    "category": "customer_service",
    "featured": False,
    "preview_image": "/templates/customer-feedback-summary.png",
    "rating": 4.5,
    "created_at": "2025-08-01T00:00:00Z",
    "steps": [
        {
            "type": "ai_prompt",
            "name": "Analyze Feedback",
            "config": {
                "system_prompt": "Feedback from {{customer_name}}:\n{{feedback}}",
                "prompt": "Analyze the following customer feedback: sentiment and concerns.",
                "max_tokens": 300,
            },
        },
        {
            "type": "email",
            "name": "Send Summary",
            "config": {
                "to": "{{manager_email}}",
                "subject": "Feedback from {{customer_name}}",
                "body": "{{steps.step-1.output}}",
            },
            "dependencies": ["step-1"],
        },
    ],
}

TEMPLATES: tuple[dict[str, Any], ...] = (
    SUPPORT_TRIAGE,
    DOCUMENT_REVIEW,
    RESEARCH_WRITE_VALIDATE,
    FEEDBACK_RESPONSE,
)
