-- Closed records stay closed; everything else may move freely.
CREATE FUNCTION assert_status_transition(from_status record_status, to_status record_status)
    RETURNS void
    LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF from_status = 'closed' AND to_status <> 'closed' THEN
        RAISE EXCEPTION 'a closed record cannot become %', to_status
            USING ERRCODE = 'check_violation',
                  HINT = 'open a new record instead';
    END IF;
END
$$;
