import com.vpcp.services.AgencyServiceImp;
import com.vpcp.services.KnobstickServiceImp;
import com.vpcp.services.VnptProperties;
import com.vpcp.services.model.BasicResult;

/**
 * Each call of the vendor SDK once, each on a fresh service object, so that every request
 * carries exactly what that call needs (the SDK accumulates parameters on one object).
 *
 * Usage: SdkCalls URL SYSTEM SECRET AGENCY FILE STORE_DIR DOC_ID NEW_AGENCY
 * Prints "RESULT call ErrorCode=..." per call; the requests are what the test looks at.
 */
public final class SdkCalls {
    private SdkCalls() {}

    private static void result(String call, BasicResult r) {
        System.out.println("RESULT " + call + " ErrorCode=" + r.getErrorCode());
    }

    public static void main(String[] a) throws Exception {
        String url = a[0], system = a[1], secret = a[2], agency = a[3], file = a[4];
        String store = a[5], docId = a[6], newAgency = a[7];
        VnptProperties p = new VnptProperties(url, system, secret, store, 3, 3);
        String kind = "{\"servicetype\":\"eDoc\",\"messagetype\":\"edoc\"}";
        result("getAgenciesList", new AgencyServiceImp(p).getAgenciesList("{}"));
        result("registerAgency", new AgencyServiceImp(p).registerAgency("{}",
                "{\"id\":\"\",\"pcode\":\"" + agency + "\",\"code\":\"" + newAgency
                + "\",\"name\":\"Sở Khoa học và Công nghệ\",\"mail\":\"skhcn@example.gov.vn\","
                + "\"mobile\":\"\",\"fax\":\"\"}"));
        result("deleteAgency", new AgencyServiceImp(p).deleteAgency("{\"AgencyCode\":\"" + newAgency + "\"}"));
        result("sendEdoc", new KnobstickServiceImp(p).sendEdoc(
                "{\"from\":\"" + agency + "\",\"servicetype\":\"eDoc\",\"messagetype\":\"edoc\"}", file));
        result("countReceiveEdoc", new KnobstickServiceImp(p).countReceiveEdoc(kind));
        result("countReceiveStatus", new KnobstickServiceImp(p).countReceiveStatus(
                "{\"servicetype\":\"eDoc\",\"messagetype\":\"status\"}"));
        result("getReceivedEdocList", new KnobstickServiceImp(p).getReceivedEdocList(kind));
        result("getSentEdocList", new KnobstickServiceImp(p).getSentEdocList(kind));
        result("getEdoc", new KnobstickServiceImp(p).getEdoc(
                "{\"filePath\":\"" + store + "\",\"docId\":\"" + docId + "\"}"));
        result("updateStatus", new KnobstickServiceImp(p).updateStatus(
                "{\"docId\":\"" + docId + "\",\"status\":\"done\"}"));
        result("downloadEdoc", new KnobstickServiceImp(p).downloadEdoc(
                "{\"filePath\":\"" + store + "\",\"docId\":\"" + docId + "\"}"));
    }
}
